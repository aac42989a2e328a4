"""The ClickHouse store alone at data sizes PostgreSQL is not loaded to here: each Query API read's p50 and
p95 (the same reads as ``clickhouse_reads.py``), bytes per step and the exact percentiles over every step,
on several data set sizes in one invocation, so that how each read grows with the data shows side by side.

The bar of issue 22 is every read's p95 under 100 ms at 100 M steps (``--runs 10000000``). Each size is a
ClickHouse database ``ds_<runs>`` in ``--chdb-dir`` (benchlib/clickhouse_load.py: generated, inserted in
large batches, merged; reused when present), its rollups brought up to date by the store's refresher
before reading. No PostgreSQL is needed: ``clickhouse_reads.py`` measures the two side by side.

    .venv/bin/python bench/clickhouse_at_scale.py --runs 100000 --runs 1000000
    .venv/bin/python bench/clickhouse_at_scale.py --runs 10000000 --samples 10
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.clickhouse_load import load_clickhouse
from benchlib.dataset import DatasetSpec
from benchlib.harness import fmt, machine_description, percentile, print_table
from clickhouse_reads import clickhouse_reads, timed
from clickhouse_vs_postgres import ch_bytes, ch_percentiles

from agenttracer.store.clickhouse.connection import connect
from agenttracer.store.clickhouse.read.session import ClickHouseReader
from agenttracer.store.clickhouse.rollup import refresh

QUERY_BAR_MS = 100.0


def measure(chdb_dir: str, runs: int, samples: int) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """Per read (p50, p95) in ms on the ``runs``-run data set, and lines describing the data set."""
    spec = DatasetSpec(runs=runs)
    conn = connect(f"chdb://{chdb_dir}?database=ds_{runs}")
    try:
        n_runs, n_steps, took, reused = load_clickhouse(conn, spec)
        lines = [f"{n_runs:,} runs, {n_steps:,} steps: " + ("reused" if reused else f"loaded in {took:.0f} s")]
        t0 = time.perf_counter()
        units = refresh(conn, now=spec.end + timedelta(days=1)).units
        lines.append(f"  rollups: {units} units recomputed in {time.perf_counter() - t0:.1f} s")
        parts = ch_bytes(conn)
        step_rows, step_bytes, _ = parts["steps"]
        both = step_bytes + parts["runs"][1]
        every = sum(b for _, b, _ in parts.values())
        # The bar's measure (clickhouse_vs_postgres.py): every table's bytes (rollups and key tables
        # included) over the steps; runs + steps and the steps table alone beside it.
        per = max(step_rows, 1)
        lines.append(f"  bytes per step on disk: {every / per:.1f} every table ({every / 2**20:,.0f} MiB), "
                     f"{both / per:.1f} runs + steps, {step_bytes / per:.1f} the steps table")
        for final in (False, True):
            t0 = time.perf_counter()
            ch_percentiles(conn, final)
            lines.append(f"  exact p50/p95/p99 over every step{' (FINAL)' if final else ''}: "
                         f"{time.perf_counter() - t0:.2f} s")
        figures: dict[str, tuple[float, float]] = {}
        for name, call in clickhouse_reads(ClickHouseReader(conn), spec).items():
            call()  # warm
            times = sorted(timed(call) for _ in range(samples))
            figures[name] = (percentile(times, 50), percentile(times, 95))
        return figures, lines
    finally:
        conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, action="append", help="a data set size in runs (~10 steps each); "
                    "repeatable; default 100,000 and 1,000,000")
    ap.add_argument("--samples", type=int, default=20, help="calls of each read per size")
    ap.add_argument("--chdb-dir", default="/tmp/agenttracer-bench-chdb")
    args = ap.parse_args()
    sizes = args.runs or [100_000, 1_000_000]
    print(machine_description())
    results = {}
    for runs in sizes:
        figures, lines = measure(args.chdb_dir, runs, args.samples)
        print("\n".join(lines), flush=True)
        results[runs] = figures
    names = list(next(iter(results.values())))
    headers = [""] + [f"{label} {runs:,}" for runs in sizes for label in ("p50", "p95")]
    rows = [[name] + [fmt(v) for runs in sizes for v in results[runs][name]] for name in names]
    print_table(f"ClickHouse (chdb) reads, ms, by data set size in runs; bar: p95 < {QUERY_BAR_MS:.0f} ms",
                headers, rows)
    largest = results[sizes[-1]]
    over = [name for name, (_, p95) in largest.items() if p95 >= QUERY_BAR_MS]
    print(f"over the bar at {sizes[-1]:,} runs: {', '.join(over) if over else 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
