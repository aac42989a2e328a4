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
# A forced merge reads every part it merges at once; above this many parts in a partition it merges in
# steps first (OPTIMIZE without FINAL merges one selection, as a background merge would).
FINAL_MERGE_PARTS = 8
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
    for table in ("runs", "steps", "run_keys", "step_keys", "rollup_runs", "rollup_sources", "bench_dataset"):
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
    for table in ("runs", "steps"):
        merge(conn, table)
    conn.insert("bench_dataset", ("generator_version", "seed", "runs", "steps"),
                [(GENERATOR_VERSION, spec.seed, n_runs, n_steps)])
    return n_runs, n_steps, time.perf_counter() - t0, False


def merge(conn: Connection, table: str) -> None:
    """Merge ``table`` into one part per partition, the steady state a store reaches once its background
    merges catch up, without reading every part at once: a single ``OPTIMIZE … FINAL`` over 10 M runs /
    ~100 M steps went past 23 GB resident and was killed."""
    def parts() -> dict[str, int]:
        rows = conn.query("SELECT partition_id, count() FROM system.parts WHERE database = currentDatabase() "
                          "AND table = {t:String} AND active GROUP BY partition_id", {"t": table}).rows
        return {str(p): int(n) for p, n in rows}

    before = parts()
    while any(n > FINAL_MERGE_PARTS for n in before.values()):
        conn.command(f"OPTIMIZE TABLE {table}")
        after = parts()
        if sum(after.values()) >= sum(before.values()):
            break  # the merge selector picked nothing more: finish with the forced merges
        before = after
    for partition_id in before:
        if not partition_id.isalnum():  # it becomes SQL text: a partition id is YYYYMM
            raise ValueError(f"unexpected partition id {partition_id!r}")
        conn.command(f"OPTIMIZE TABLE {table} PARTITION ID '{partition_id}' FINAL")


def _flush(conn: Connection, runs: list[tuple[object, ...]], steps: list[tuple[object, ...]]) -> None:
    conn.insert("runs", RUN_COLUMNS, runs)
    for i in range(0, len(steps), 200_000):
        conn.insert("steps", STEP_COLUMNS, steps[i: i + 200_000])
    runs.clear()
    steps.clear()
