"""What the key tables' materialized views (schema v0005: run_keys, step_keys) cost an insert on ClickHouse.

Three databases in one chdb directory, migrated alike, then: both views dropped, only the steps' view
dropped, both kept. ``--rounds`` rounds of one insert of steps then one of runs (``--runs`` runs of
``--steps`` steps each: the group commit's shape, store/clickhouse/write/commit.py) go into each database
in turn, the order rotating round by round; prints the process CPU and wall time per round for each
(chdb runs in this process, so its CPU is the engine's work plus the driver's).

    .venv/bin/python bench/clickhouse_keys_ingest.py --chdb-dir /tmp/keys-ingest
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from agenttracer.store.clickhouse.connection import Connection, connect
from agenttracer.store.clickhouse.schema.migrate import upgrade
from agenttracer.store.clickhouse.write.rows import RUN_COLUMNS, STEP_COLUMNS

START = datetime(2026, 12, 1, tzinfo=timezone.utc)
VARIANTS = {"no views": ("run_keys_of_runs", "step_keys_of_steps"), "run_keys only": ("step_keys_of_steps",),
            "both views": ()}


def batch(rnd: random.Random, runs: int, steps: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """One round's rows: ``runs`` finished runs of ``steps`` steps each, within a day."""
    run_rows, step_rows = [], []
    for _ in range(runs):
        run_id, started = str(uuid.uuid4()), START + timedelta(seconds=rnd.randint(0, 86_399))
        run = dict(project="default", agent_id="agent", started_at=started, run_id=run_id, agent_version="1",
                   environment="prod", status="success", ended_at=started, duration_ms=1.0, step_count=steps,
                   error_step_count=0, retry_count=0, meta="", meta_removed=0, ingested_at=started,
                   updated_at=started, source="sdk", abandoned=False, version=time.time_ns(), is_deleted=0)
        run_rows.append(tuple(run.get(c) for c in RUN_COLUMNS))
        for seq in range(1, steps + 1):
            step = dict(project="default", agent_id="agent", agent_version="1", environment="prod", run_id=run_id,
                        seq=seq, step_type="tool", name="call", status="ok", started_at=started, ended_at=started,
                        latency_ms=1.0, attempt=1, meta="", meta_removed=0, version=time.time_ns(), is_deleted=0)
            step_rows.append(tuple(step.get(c) for c in STEP_COLUMNS))
    return run_rows, step_rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chdb-dir", default="/tmp/agenttracer-keys-ingest")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    conns: dict[str, Connection] = {}
    for i, (name, dropped) in enumerate(VARIANTS.items()):
        conn = connect(f"chdb://{args.chdb_dir}?database=keys_ingest_{i}")
        conn.command(f"DROP DATABASE IF EXISTS keys_ingest_{i}")
        conn.command(f"CREATE DATABASE keys_ingest_{i}")
        upgrade(conn)
        for view in dropped:
            conn.command(f"DROP VIEW {view}")
        conns[name] = conn
    rnd = random.Random(1)
    cpu = dict.fromkeys(conns, 0.0)
    wall = dict.fromkeys(conns, 0.0)
    names = list(conns)
    for r in range(args.rounds):
        runs, steps = batch(rnd, args.runs, args.steps)
        for name in names[r % len(names):] + names[:r % len(names)]:
            c0, w0 = time.process_time(), time.perf_counter()
            conns[name].insert("steps", STEP_COLUMNS, steps, token=uuid.uuid4().hex)
            conns[name].insert("runs", RUN_COLUMNS, runs, token=uuid.uuid4().hex)
            cpu[name] += time.process_time() - c0
            wall[name] += time.perf_counter() - w0
    print(f"{args.rounds} rounds of {args.runs * args.steps} steps + {args.runs} runs, per round:")
    for name in names:
        per = 1000 / args.rounds
        print(f"  {name:14} CPU {cpu[name] * per:6.1f} ms   wall {wall[name] * per:6.1f} ms")
    for conn in conns.values():
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
