"""The generated data set (``dataset.py``) as ClickHouse rows: the same runs and steps the PostgreSQL loader
copies, in the ClickHouse store's tables (store/clickhouse/schema), inserted in large batches.

A loaded database carries a ``bench_dataset`` marker (generator version, seed, runs, steps) so a later
invocation reuses it, as the PostgreSQL loader does.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.schema.migrate import upgrade

from .dataset import EPOCH, GENERATOR_VERSION, DatasetSpec, Generator

RUN_COLUMNS = ("project", "run_id", "agent_id", "agent_version", "environment", "status", "started_at", "ended_at",
               "duration_ms", "step_count", "error_step_count", "retry_count", "failure_type", "failure_code",
               "failure_step_seq", "failure_message", "failure_recorded_at", "meta", "meta_removed", "ingested_at",
               "updated_at", "source", "abandoned", "version", "is_deleted")
STEP_COLUMNS = ("project", "agent_id", "agent_version", "environment", "run_id", "seq", "step_type", "name", "status",
                "started_at", "ended_at", "latency_ms", "attempt", "retry_of_seq", "parent_seq", "error_class",
                "failure_code", "meta", "meta_removed", "version", "is_deleted")
BATCH_RUNS = 50_000
_EPOCH_UTC = EPOCH.replace(tzinfo=timezone.utc)


def _at(us: int) -> datetime:
    return _EPOCH_UTC + timedelta(microseconds=us)


def load_clickhouse(conn: Connection, spec: DatasetSpec, *, log: bool = True) -> tuple[int, int, float, bool]:
    """(runs, steps, seconds, reused): the data set in ``conn``'s database, loaded unless already there."""
    upgrade(conn)
    conn.command("CREATE TABLE IF NOT EXISTS bench_dataset (generator_version UInt32, seed UInt64, runs UInt64, "
                 "steps UInt64) ENGINE = MergeTree ORDER BY tuple()")
    found = conn.query("SELECT generator_version, seed, runs, steps FROM bench_dataset").rows
    if found and tuple(found[0][:3]) == (GENERATOR_VERSION, spec.seed, spec.runs):
        return spec.runs, int(found[0][3]), 0.0, True
    for table in ("runs", "steps", "rollup_runs", "rollup_sources", "bench_dataset"):
        conn.command(f"TRUNCATE TABLE {table}")
    t0 = time.perf_counter()
    runs: list[tuple[object, ...]] = []
    steps: list[tuple[object, ...]] = []
    n_runs = n_steps = 0
    for run in Generator(spec).runs():
        shape = run.shape
        running = run.status == "running"
        end_us = run.start_us + shape.duration_us
        failure = shape.failure if shape.failure is not None and not running else None
        seen = _at(end_us)
        runs.append((
            "default", run.run_id, run.agent_id, run.agent_version, run.environment, run.status, _at(run.start_us),
            None if running else _at(end_us), None if running else shape.duration_us / 1000, len(shape.steps),
            shape.error_steps, shape.retries, failure[0] if failure else None, failure[1] if failure else None,
            failure[2] if failure else None, failure[3] if failure else None, _at(end_us) if failure else None,
            json.dumps(run.meta, separators=(",", ":")), 0, seen, seen, "sdk", False, 1, 0))
        for s in shape.steps:
            steps.append((
                "default", run.agent_id, run.agent_version, run.environment, run.run_id, s.seq, s.step_type, s.name,
                s.status, _at(run.start_us + s.start_off_us), _at(run.start_us + s.end_off_us), s.latency_ms,
                s.attempt, s.retry_of_seq, None, s.error_class, s.failure_code,
                json.dumps(s.meta, separators=(",", ":")), 0, 1, 0))
        if len(runs) >= BATCH_RUNS:
            n_runs, n_steps = n_runs + len(runs), n_steps + len(steps)
            _flush(conn, runs, steps)
            if log:
                print(f"  clickhouse: {n_runs:,} runs loaded ({time.perf_counter() - t0:.0f} s)", flush=True)
    n_runs, n_steps = n_runs + len(runs), n_steps + len(steps)
    _flush(conn, runs, steps)
    conn.command("OPTIMIZE TABLE runs FINAL")
    conn.command("OPTIMIZE TABLE steps FINAL")
    conn.insert("bench_dataset", ("generator_version", "seed", "runs", "steps"),
                [(GENERATOR_VERSION, spec.seed, n_runs, n_steps)])
    return n_runs, n_steps, time.perf_counter() - t0, False


def _flush(conn: Connection, runs: list[tuple[object, ...]], steps: list[tuple[object, ...]]) -> None:
    conn.insert("runs", RUN_COLUMNS, runs)
    for i in range(0, len(steps), 200_000):
        conn.insert("steps", STEP_COLUMNS, steps[i: i + 200_000])
    runs.clear()
    steps.clear()
