"""The ClickHouse store alone at data sizes PostgreSQL is not loaded to here: each Query API read's p50 and
p95 (the same reads as ``clickhouse_reads.py``), bytes per step and the exact percentiles over every step,
on several data set sizes in one invocation, so that how each read grows with the data shows side by side.

The bar of issue 22 is every read's p95 under 100 ms at 100 M steps (``--runs 10000000``). Each size is a
ClickHouse database ``ds_<runs>`` in ``--chdb-dir`` (benchlib/clickhouse_load.py: generated, inserted in
large batches, merged; reused when present), its rollups brought up to date by the store's refresher
before reading. No PostgreSQL is needed: ``clickhouse_reads.py`` measures the two side by side.

``--copies N`` reaches the large sizes without generating them in Python (42 min for 10 M runs): each
``--runs`` data set is loaded as above, then copied N times into ``ds_<runs>x<N>`` by the engine — run
ids re-suffixed, times unchanged, so the same 30 days hold N times the runs of every agent — and merged
the same way. The copies' inserts go through the store's materialized views like any other insert.

    .venv/bin/python bench/clickhouse_at_scale.py --runs 100000 --runs 1000000
    .venv/bin/python bench/clickhouse_at_scale.py --runs 10000000 --samples 10
    .venv/bin/python bench/clickhouse_at_scale.py --runs 1000000 --copies 10 --samples 20   # 100 M steps
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.clickhouse_load import load_clickhouse, merge
from benchlib.dataset import DatasetSpec
from benchlib.harness import fmt, machine_description, percentile, print_table
from clickhouse_reads import clickhouse_reads, timed
from clickhouse_vs_postgres import ch_bytes, ch_percentiles

from agenttracer.store.clickhouse.connection import Connection, connect
from agenttracer.store.clickhouse.read.session import ClickHouseReader
from agenttracer.store.clickhouse.rollup import refresh
from agenttracer.store.clickhouse.schema.migrate import upgrade

QUERY_BAR_MS = 100.0
# The tables a copy inserts into; the key tables, self time and rollups follow from them.
COPIED = ("steps", "runs")
# Parts one merge may take on the copy's tables: a merge holds buffers for every part it reads, and ten
# copies of 1 M runs leave ~100 million-row parts a partition (the default limit), past 21 GB merged at once.
MERGE_AT_ONCE = 10


def load_copies(chdb_dir: str, spec: DatasetSpec, copies: int) -> tuple[Connection, int, int, float, bool]:
    """The ``spec`` data set copied ``copies`` times into ``ds_<runs>x<copies>`` (loaded first if need be):
    (connection to the copy, runs, steps, seconds, reused)."""
    source, target = f"ds_{spec.runs}", f"ds_{spec.runs}x{copies}"
    conn = connect(f"chdb://{chdb_dir}?database={source}")
    load_clickhouse(conn, spec)
    done = conn.query(f"SELECT count() FROM system.tables WHERE database = '{target}' AND name = 'bench_dataset'")
    if done.rows[0][0]:
        marker = conn.query(f"SELECT runs, steps, (SELECT runs FROM bench_dataset) * {copies} "
                            f"FROM {target}.bench_dataset").rows
        if marker and marker[0][0] == marker[0][2]:
            conn.close()
            return connect(f"chdb://{chdb_dir}?database={target}"), int(marker[0][0]), int(marker[0][1]), 0.0, True
    # Anything else there is an interrupted copy: start again from an empty schema.
    conn.command(f"DROP DATABASE IF EXISTS {target}")
    conn.command(f"CREATE DATABASE {target}")
    conn.close()
    conn = connect(f"chdb://{chdb_dir}?database={target}")
    upgrade(conn)
    for table in COPIED:
        conn.command(f"ALTER TABLE {table} MODIFY SETTING max_parts_to_merge_at_once = {MERGE_AT_ONCE}")
    t0 = time.perf_counter()
    for k in range(copies):
        for table in COPIED:  # a run id is a UUID: its last four hex digits become the copy's number
            conn.command(f"INSERT INTO {table} SELECT * REPLACE (concat(substring(run_id, 1, 32), '{k:04d}') "
                         f"AS run_id) FROM {source}.{table}")
        print(f"  clickhouse: copy {k + 1} of {copies} inserted ({time.perf_counter() - t0:.0f} s)", flush=True)
    for table in COPIED:
        merge(conn, table)
    n_runs, n_steps = (int(conn.query(f"SELECT count() FROM {table}").rows[0][0]) for table in ("runs", "steps"))
    conn.command("CREATE TABLE bench_dataset (generator_version UInt32, seed UInt64, runs UInt64, steps UInt64) "
                 "ENGINE = MergeTree ORDER BY tuple()")
    conn.insert("bench_dataset", ("generator_version", "seed", "runs", "steps"),
                [(0, spec.seed, n_runs, n_steps)])
    return conn, n_runs, n_steps, time.perf_counter() - t0, False


def measure(chdb_dir: str, runs: int, samples: int, copies: int) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """Per read (p50, p95) in ms on the ``runs``-run data set (copied ``copies`` times when above 1), and
    lines describing the data set."""
    spec = DatasetSpec(runs=runs)
    if copies > 1:
        conn, n_runs, n_steps, took, reused = load_copies(chdb_dir, spec, copies)
    else:
        conn = connect(f"chdb://{chdb_dir}?database=ds_{runs}")
    try:
        if copies <= 1:
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
    ap.add_argument("--copies", type=int, default=1, help="measure each size copied this many times into "
                    "the same 30 days (run ids re-suffixed)")
    ap.add_argument("--chdb-dir", default="/tmp/agenttracer-bench-chdb")
    args = ap.parse_args()
    sizes = args.runs or [100_000, 1_000_000]
    print(machine_description())
    results = {}
    for runs in sizes:
        figures, lines = measure(args.chdb_dir, runs, args.samples, args.copies)
        print("\n".join(lines), flush=True)
        results[runs * args.copies] = figures
    sizes = list(results)
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
