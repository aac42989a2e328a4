"""The ClickHouse runs list, agents list and run detail on tables ten times the loaded ones, left as parts.

bench/clickhouse_reads.py loads its data set and merges it (one part per monthly partition), where
``FINAL`` costs little. This creates ``scaled_<runs>x<copies>`` with this checkout's schema and copies the
loaded ``ds_<runs>`` steps and runs ``--copies`` times into it — run ids suffixed, starts moved back a
month per copy — as one insert (one part) per copy with the runs' and steps' merges stopped, as a live
table holds parts until merges catch up, then times the store's runs list (first page, one agent's
failures, page 21), agents list and run detail (a random run, 100 steps), ``--samples``
calls each: p50 and p95 in ms. Run it with another checkout's ``src`` on PYTHONPATH to time that
code on the same table (same process rules: one chdb directory per process).

    .venv/bin/python bench/clickhouse_reads.py --runs 100000 --chdb-dir /tmp/ch   # loads ds_100000
    .venv/bin/python bench/clickhouse_runs_scaled.py --runs 100000 --chdb-dir /tmp/ch
    PYTHONPATH=../other/src .venv/bin/python bench/clickhouse_runs_scaled.py --runs 100000 --chdb-dir /tmp/ch
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from agenttracer.store.clickhouse.connection import connect
from agenttracer.store.clickhouse.read import runs
from agenttracer.store.clickhouse.schema.migrate import upgrade
from agenttracer.store.filters import RunFilters


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000, help="the loaded data set (ds_<runs>)")
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--chdb-dir", default="/tmp/agenttracer-bench-chdb")
    args = ap.parse_args()
    source, target = f"ds_{args.runs}", f"scaled_{args.runs}x{args.copies}"
    ch = connect(f"chdb://{args.chdb_dir}?database={target}")
    if not ch.query(f"EXISTS TABLE {target}.steps").rows[0][0]:
        ch.command(f"DROP DATABASE IF EXISTS {target}")
        ch.command(f"CREATE DATABASE {target}")
        upgrade(ch)  # this checkout's schema (and whatever its inserts into runs fill)
        for table in ("runs", "steps"):
            ch.command(f"SYSTEM STOP MERGES {target}.{table}")
        for k in range(args.copies):
            for table in ("steps", "runs"):
                ch.command(f"INSERT INTO {target}.{table} SELECT * REPLACE (concat(substring(run_id, 1, 32), "
                           f"'{k:04d}') AS run_id, started_at - toIntervalDay({31 * k}) AS started_at) "
                           f"FROM {source}.{table}")
    for table in ("runs", "steps"):
        n, parts = ch.query(f"SELECT (SELECT count() FROM {target}.{table}), count() FROM system.parts "
                            f"WHERE database = '{target}' AND table = '{table}' AND active").rows[0]
        print(f"{target}: {n:,} {table} in {parts} parts")
    rnd = random.Random(1)
    ids = [row[0] for row in ch.query(f"SELECT run_id FROM {target}.runs ORDER BY cityHash64(run_id) LIMIT 500").rows]
    deep = None
    for _ in range(20):
        _, deep = runs.list_runs(ch, RunFilters(), limit=50, cursor=deep)
    cases: dict[str, Callable[[], Any]] = {
        "runs list: first page": lambda: runs.list_runs(ch, RunFilters(), limit=50),
        "runs list: one agent, failures": lambda: runs.list_runs(
            ch, RunFilters(agent_id="support-bot", status="failure"), limit=50),
        "runs list: page 21": lambda: runs.list_runs(ch, RunFilters(), limit=50, cursor=deep),
        "agents": lambda: runs.list_agents(ch),
        "run detail (random run)": lambda: runs.get_run(ch, rnd.choice(ids), steps_limit=100),
    }
    for name, fn in cases.items():
        fn()
        took = []
        for _ in range(args.samples):
            t0 = time.perf_counter()
            fn()
            took.append(1000 * (time.perf_counter() - t0))
        took.sort()
        p95 = took[min(len(took) - 1, round(0.95 * (len(took) - 1)))]
        print(f"{name:32} p50 {took[len(took) // 2]:8.1f} ms   p95 {p95:8.1f} ms")
    ch.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
