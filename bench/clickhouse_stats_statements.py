"""What each statement of ``GET /v1/stats`` costs on ClickHouse: the store's stats read, timed statement by
statement, on a data set ``clickhouse_reads.py`` loaded (same ``--runs`` and ``--chdb-dir``; run it after,
chdb opens a directory from one process only).

Each statement is timed from the client (send, run, read the rows), so the figures include chdb's
JSON result; the medians over ``--samples`` calls per window are printed with the statement's share of
the whole call.

    .venv/bin/python bench/clickhouse_stats_statements.py --runs 100000 --chdb-dir /tmp/agenttracer-bench-chdb
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.dataset import DatasetSpec
from benchlib.harness import machine_description, print_table

from agenttracer.store.clickhouse.connection import Connection, Result, connect
from agenttracer.store.clickhouse.read import stats
from agenttracer.store.clickhouse.rollup import refresh
from agenttracer.store.clickhouse.schema.migrate import upgrade
from agenttracer.store.filters import RunFilters

# The first of these found in a statement's text names it.
KINDS = (
    ("rollup_sources", "freshness (raw counts vs rollup_sources and rollup_days)"),
    ("rollup_runs", "runs: rollup rows + raw rest"),
    ("rollup_steps", "steps: rollup rows + raw rest"),
    ("s.seq, s.parent_seq", "self time not stored yet: intervals"),
    ("step_self_time", "self time: stored sums"),
    ("quantilesExactInclusive", "exact path: runs or steps"),
)


class Timed:
    """The connection, each query's time added to ``spent`` under its kind."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.spent: dict[str, float] = {}

    def query(self, sql: str, params: Any = None, settings: Any = None) -> Result:
        kind = next((name for key, name in KINDS if key in sql), "other: " + " ".join(sql.split())[:50])
        t0 = time.perf_counter()
        try:
            return self.conn.query(sql, params, settings)
        finally:
            self.spent[kind] = self.spent.get(kind, 0.0) + 1000 * (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--chdb-dir", default="/tmp/agenttracer-bench-chdb")
    ap.add_argument("--database", help="the data set's database (default ds_<runs>; clickhouse_at_scale.py "
                    "--copies N builds ds_<runs>xN)")
    args = ap.parse_args()
    spec = DatasetSpec(runs=args.runs)
    print(machine_description())
    conn = connect(f"chdb://{args.chdb_dir}?database={args.database or f'ds_{args.runs}'}")
    upgrade(conn)
    t0 = time.perf_counter()
    units = refresh(conn, now=spec.end + timedelta(days=1)).units
    print(f"rollups: {units} units recomputed first, in {time.perf_counter() - t0:.1f} s")
    end = spec.end
    windows = {"stats: 24 h": RunFilters(since=end - timedelta(days=1), until=end),
               "stats: 30 days": RunFilters(since=end - timedelta(days=30), until=end)}
    for label, filters in windows.items():
        stats.run_stats(conn, filters, end)  # warm
        calls: list[dict[str, float]] = []
        totals = []
        for _ in range(args.samples):
            timed = Timed(conn)
            t0 = time.perf_counter()
            stats.run_stats(timed, filters, end)
            totals.append(1000 * (time.perf_counter() - t0))
            calls.append(timed.spent)
        whole = statistics.median(totals)
        kinds = sorted({k for c in calls for k in c})
        rows = []
        for kind in kinds:
            ms = statistics.median(c.get(kind, 0.0) for c in calls)
            rows.append([kind, f"{ms:.1f}", f"{100 * ms / whole:.0f} %"])
        rows.append(["whole call (median)", f"{whole:.1f}", "100 %"])
        print_table(f"{label}: median over {args.samples} calls", ["statement", "ms", "share"], rows)
    conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
