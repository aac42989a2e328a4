"""``GET /v1/stats`` on ClickHouse over whole-hour windows and over the same windows shifted to mid-hour, as a
dashboard asks (``since`` = now - 24 h or 30 days): the store's stats read, p50 and p95 per window, on a data
set ``clickhouse_reads.py`` loaded (same ``--runs`` and ``--chdb-dir``; chdb opens a directory from one
process only). A mid-hour window has partial hours at both ends, read raw with their steps.

Old against new: run it from each checkout's venv on its own copy of the directory, alternating.

    .venv/bin/python bench/clickhouse_stats_windows.py --runs 100000 --chdb-dir /tmp/agenttracer-bench-chdb
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.dataset import DatasetSpec
from benchlib.harness import machine_description, percentile, print_table

from agenttracer.store.clickhouse.connection import connect
from agenttracer.store.clickhouse.read import stats
from agenttracer.store.filters import RunFilters

MID_HOUR = timedelta(minutes=23)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--chdb-dir", default="/tmp/agenttracer-bench-chdb")
    args = ap.parse_args()
    print(machine_description())
    end = DatasetSpec(runs=args.runs).end
    conn = connect(f"chdb://{args.chdb_dir}?database=ds_{args.runs}")
    windows: dict[str, RunFilters] = {}
    for label, span, agent in (("24 h", timedelta(days=1), None), ("30 days", timedelta(days=30), None),
                               ("30 days, one agent", timedelta(days=30), "support-bot")):
        for shift, where in ((timedelta(0), "whole hours"), (MID_HOUR, "mid-hour")):
            windows[f"stats: {label}, {where}"] = RunFilters(agent_id=agent, since=end - span - shift,
                                                             until=end - shift)
    rows = []
    for name, filters in windows.items():
        stats.run_stats(conn, filters, end)  # warm
        ms, cpu = [], []
        for _ in range(args.samples):
            t0, c0 = time.perf_counter(), time.process_time()
            stats.run_stats(conn, filters, end)
            ms.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.process_time() - c0))
        ms.sort()
        rows.append([name, f"{statistics.median(ms):.1f}", f"{percentile(ms, 95):.1f}",
                     f"{statistics.median(cpu):.1f}"])
    # CPU time of the process (chdb's threads included): steadier than wall time on a shared box.
    print_table(f"ClickHouse stats, {args.runs:,} runs, {args.samples} calls each",
                ["window", "p50 ms", "p95 ms", "CPU ms, median"], rows)
    conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
