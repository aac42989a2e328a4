"""Every figure of the ClickHouse bars (DESIGN.md, issue 22), PostgreSQL beside ClickHouse, in one invocation on
the same generated data — reusing the data sets an earlier invocation loaded, so it re-runs in minutes.

One script owns each figure; this one loads once and calls them, then prints the bars:

* bytes on disk per step and exact percentiles over every step (``percentile_cont`` against
  ``quantilesExactInclusive``, FINAL included): ``clickhouse_vs_postgres.py``;
* p50/p95 of runs list, run detail, stats 24 h and 30 days, compare, agents, in-process through each
  store's reader, alternating call by call: ``clickhouse_reads.py``;
* ingest steps/s through the Ingest API, one server process, fresh databases: ``ingest_throughput.py``.

Data: PostgreSQL schema ``ds_<runs>`` of ``--pg-url`` (benchlib/loader.py; with its rollups, as a
deployment has them — building them is most of a first load's time), ClickHouse database ``ds_<runs>``
in ``--chdb-dir``, copied from that PostgreSQL schema (identical rows) and merged; both reused when
present. The ClickHouse rollups are brought up to date by the store's refresher before reading.

    .venv/bin/python bench/clickhouse_bars.py --runs 100000
    .venv/bin/python bench/clickhouse_bars.py --runs 1000000 --samples 20 --ingest-steps 150000
    .venv/bin/python bench/clickhouse_bars.py --ingest-only --ingest-steps 60000   # no data set, no reads
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
from benchlib.harness import fmt, machine_description, print_table
from benchlib.loader import load_postgres
from benchlib.pg import DEFAULT_BENCH_URL
from clickhouse_reads import read_cases, side_by_side
from clickhouse_vs_postgres import (
    BYTES_BAR,
    BYTES_RATIO_BAR,
    PERCENTILE_RATIO_BAR,
    ch_bytes,
    ch_percentiles,
    load_clickhouse,
    max_relative_difference,
    pg_bytes,
    pg_percentiles,
)
from ingest_throughput import STEPS_PER_RUN, Workload, fresh_database, run_end_to_end

from agenttracer.store.clickhouse.read.session import ClickHouseReader
from agenttracer.store.clickhouse.rollup import refresh
from agenttracer.store.sql.schema.engine import make_engine

QUERY_BAR_MS = 100.0
DEFAULT_CHDB_DIR = Path("/tmp/agenttracer-bench-bars-ch")


def ingest(args: argparse.Namespace) -> dict[str, list[float]]:
    """Steps/s end to end per backend, ``--ingest-repeat`` rounds, the backends alternating."""
    clients = 4
    w = Workload(clients, max(1, int(args.ingest_steps / STEPS_PER_RUN / clients)), 500, 7)
    options = argparse.Namespace(via_cli=False, profile=None, scrape_interval=0.0)
    rates: dict[str, list[float]] = {"postgresql": [], "chdb": []}
    for rep in range(args.ingest_repeat):
        for backend in ("postgresql", "chdb") if rep % 2 == 0 else ("chdb", "postgresql"):
            with fresh_database(backend, args.pg_url) as url:
                rates[backend].append(run_end_to_end(backend, url, w, rep, options).steps_per_s)
    return rates


def ingest_bar(args: argparse.Namespace) -> list[str]:
    """The ingest bar's row: median steps/s per backend (``ingest``), printed per round too."""
    rates = ingest(args)
    pg_rate, ch_rate = statistics.median(rates["postgresql"]), statistics.median(rates["chdb"])
    print(f"ingest steps/s per round: PostgreSQL {[round(r) for r in rates['postgresql']]}, "
          f"ClickHouse {[round(r) for r in rates['chdb']]}")
    return ["ingest steps/s, one server process (median)", fmt(pg_rate, 0), fmt(ch_rate, 0),
            f"{pg_rate / ch_rate:.2f}x", "CH >= PG", "met" if ch_rate >= pg_rate else "NOT MET"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs in the data set (~10 steps each)")
    parser.add_argument("--pg-url", default=DEFAULT_BENCH_URL)
    parser.add_argument("--chdb-dir", type=Path, default=DEFAULT_CHDB_DIR)
    parser.add_argument("--samples", type=int, default=20, help="calls of each read per store")
    parser.add_argument("--exact-repeat", type=int, default=3, help="rounds of the exact-percentile queries")
    parser.add_argument("--ingest-steps", type=int, default=150_000, help="steps sent per ingest round")
    parser.add_argument("--ingest-repeat", type=int, default=2)
    parser.add_argument("--no-ingest", action="store_true")
    parser.add_argument("--ingest-only", action="store_true", help="only the ingest bar (no data set is loaded)")
    args = parser.parse_args()
    spec = DatasetSpec(runs=args.runs)
    print(machine_description(), flush=True)
    if args.ingest_only:
        print_table("The ingest bar", ["figure", "PostgreSQL", "ClickHouse", "PG/CH", "bar", ""], [ingest_bar(args)])
        return 0

    t0 = time.perf_counter()
    loaded = load_postgres(args.pg_url, spec)
    print(f"PostgreSQL: {loaded.runs:,} runs / {loaded.steps:,} steps, {loaded.detail}", flush=True)
    conn, took, reused = load_clickhouse(args.chdb_dir, loaded)
    print("ClickHouse (chdb): " + ("reused" if reused else f"copied from PostgreSQL and merged in {took:.0f} s"))
    t = time.perf_counter()
    units = refresh(conn, now=spec.end + timedelta(days=1)).units
    print(f"ClickHouse rollups: {units} units recomputed in {time.perf_counter() - t:.1f} s; "
          f"data ready after {time.perf_counter() - t0:.0f} s", flush=True)
    steps = loaded.steps
    bars: list[list[str]] = []

    pg_data, pg_rollups = pg_bytes(loaded)
    ch_all = sum(b for _, b, _ in ch_bytes(conn).values())
    pg_per, ch_per = (pg_data + pg_rollups) / steps, ch_all / steps
    bars.append(["bytes on disk per step (PG: tables + indexes + rollups; CH: every table)", fmt(pg_per),
                 fmt(ch_per), f"{pg_per / ch_per:.1f}x",
                 f"<= {BYTES_BAR:.0f} and >= {BYTES_RATIO_BAR:.0f}x",
                 "met" if ch_per <= BYTES_BAR and pg_per / ch_per >= BYTES_RATIO_BAR else "NOT MET"])

    times: dict[str, list[float]] = {"pg": [], "ch": []}
    answers = {}
    for _ in range(args.exact_repeat):
        for name, run in (("pg", lambda: pg_percentiles(loaded)), ("ch", lambda: ch_percentiles(conn, True))):
            t = time.perf_counter()
            answers[name] = run()
            times[name].append(time.perf_counter() - t)
    pg_s, ch_s = statistics.median(times["pg"]), statistics.median(times["ch"])
    print(f"exact p50/p95 per agent and version over every step: max relative difference "
          f"{max_relative_difference(answers['pg'], answers['ch']):.1e}")
    bars.append(["exact p50/p95 over every step, no rollups (median s; CH with FINAL)", fmt(pg_s, 2),
                 fmt(ch_s, 2), f"{pg_s / ch_s:.1f}x", f">= {PERCENTILE_RATIO_BAR:.0f}x",
                 "met" if pg_s / ch_s >= PERCENTILE_RATIO_BAR else "NOT MET"])

    engine = make_engine(loaded.url)
    rows = side_by_side(read_cases(engine, ClickHouseReader(conn), spec), args.samples)
    engine.dispose()
    headers = ["", "PG p50 ms", "PG p95 ms", "CH p50 ms", "CH p95 ms", "PG/CH p95"]
    print_table(f"Reads, {loaded.runs:,} runs / {steps:,} steps, in-process, {args.samples} calls each", headers, rows)
    for name, _pg50, pg95, _ch50, ch95, ratio in rows:
        ok = float(ch95.replace(",", "")) < QUERY_BAR_MS
        bars.append([f"p95 {name} (ms)", pg95, ch95, ratio, f"CH < {QUERY_BAR_MS:.0f}", "met" if ok else "NOT MET"])
    conn.close()

    if not args.no_ingest:
        bars.append(ingest_bar(args))

    print_table(f"The bars, {loaded.runs:,} runs / {steps:,} steps (bars are set at 100 M steps)",
                ["figure", "PostgreSQL", "ClickHouse", "PG/CH", "bar", ""], bars)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
