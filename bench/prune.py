"""Retention prune: how fast whole runs are deleted, and how long a concurrent writer waits meanwhile.

For each database: a fresh migrated database (a temporary SQLite file; a fresh schema in our own
PostgreSQL database ``at_production`` — created if missing), seeded with ``--runs`` old runs of
``--steps`` steps each (every tenth with a failure) plus as many recent runs. Then
``store.write.retention.prune`` deletes the old ones in batches of ``--batch`` runs while a writer thread
stores one new run with a step every 10 ms, each in its own transaction, as ingest would. Printed:
prune wall time, runs/s and steps/s deleted, and the writer's p50 / p99 / max latency during the
prune — the number that says whether ingest was locked out.

    .venv/bin/python bench/prune.py                                  # both databases, 20,000 old runs
    .venv/bin/python bench/prune.py --runs 100000 --backend postgresql
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from agenttracer.store.sql.schema.tables import failures, runs, steps
from agenttracer.store.sql.write.retention import prune

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PG_DB = "at_production"


def seed(engine: sa.Engine, n_runs: int, n_steps: int, started: datetime) -> None:
    chunk = 1000
    for start in range(0, n_runs, chunk):
        run_rows, step_rows, failure_rows = [], [], []
        for i in range(start, min(n_runs, start + chunk)):
            run_id = str(uuid.uuid4())
            t = started - timedelta(seconds=i)
            run_rows.append({"run_id": run_id, "agent_id": "bench", "agent_version": "v1", "environment": "b",
                             "status": "success", "started_at": t, "ingested_at": t, "updated_at": t,
                             "step_count": n_steps})
            step_rows += [{"run_id": run_id, "seq": s, "step_type": "tool", "name": f"s{s}", "status": "ok",
                           "started_at": t, "ended_at": t, "latency_ms": 1.0} for s in range(1, n_steps + 1)]
            if i % 10 == 0:
                failure_rows.append({"run_id": run_id, "failure_type": "tool", "failure_code": "timeout",
                                     "step_seq": 1, "recorded_at": t})
        with engine.begin() as conn:
            conn.execute(runs.insert(), run_rows)
            conn.execute(steps.insert(), step_rows)
            if failure_rows:
                conn.execute(failures.insert(), failure_rows)


def writer(engine: sa.Engine, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        run_id = str(uuid.uuid4())
        now = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(runs.insert().values(run_id=run_id, started_at=now, ingested_at=now, updated_at=now))
            conn.execute(steps.insert().values(run_id=run_id, seq=1, step_type="tool", name="w", status="ok",
                                               started_at=now, ended_at=now, latency_ms=1.0))
        latencies.append(time.perf_counter() - t0)
        stop.wait(0.01)


def measure(label: str, url: str, args: argparse.Namespace) -> None:
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(timezone.utc)
    seed(engine, args.runs, args.steps, now - timedelta(days=60))
    seed(engine, args.runs, args.steps, now - timedelta(days=1))
    latencies: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(target=writer, args=(engine, stop, latencies))
    thread.start()
    time.sleep(0.2)
    before = len(latencies)
    t0 = time.perf_counter()
    result = prune(engine, timedelta(days=30), batch_size=args.batch)
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join()
    during = sorted(latencies[before:]) or [0.0]
    p99 = during[min(len(during) - 1, int(len(during) * 0.99))]
    print(f"{label:<10} pruned {result.runs} runs / {result.steps} steps / {result.failures} failures "
          f"in {elapsed:.2f} s ({result.batches} batches of {args.batch}): "
          f"{result.runs / elapsed:,.0f} runs/s, {result.steps / elapsed:,.0f} steps/s")
    print(f"{'':<10} concurrent writer during the prune: {len(during)} writes, "
          f"p50 {statistics.median(during) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {during[-1] * 1000:.1f} ms")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000, help="old runs to delete (as many recent ones stay)")
    parser.add_argument("--steps", type=int, default=10, help="steps per run")
    parser.add_argument("--batch", type=int, default=500, help="runs per delete transaction")
    parser.add_argument("--backend", choices=["both", "sqlite", "postgresql"], default="both")
    args = parser.parse_args()
    if args.backend in ("both", "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            measure("sqlite", f"sqlite:///{Path(tmp) / 'prune.db'}", args)
    if args.backend in ("both", "postgresql"):
        admin = make_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            if not conn.execute(sa.text("select 1 from pg_database where datname = :d"), {"d": PG_DB}).first():
                conn.execute(sa.text(f'CREATE DATABASE "{PG_DB}"'))
        admin.dispose()
        schema = f"prune_{uuid.uuid4().hex[:8]}"
        base = make_engine(f"{PG_SERVER}/{PG_DB}", poolclass=sa.pool.NullPool)
        with base.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            measure("postgresql", f"{PG_SERVER}/{PG_DB}?options=-csearch_path%3D{schema}", args)
        finally:
            with base.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            base.dispose()


if __name__ == "__main__":
    main()
