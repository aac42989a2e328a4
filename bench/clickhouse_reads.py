"""ClickHouse against PostgreSQL on the same generated runs: the Query API's reads (runs list, run detail,
stats 24 h and 30 days, compare, agents), p50 and p95 side by side. (Exact percentiles over every step
and bytes per step are clickhouse_vs_postgres.py's; every bar at once: clickhouse_bars.py, which uses
``read_cases`` and ``side_by_side`` from here.)

1. Generates the data set (benchlib/dataset.py) and loads it into PostgreSQL (COPY, indexes, rollups:
   benchlib/loader.py, reused when already loaded) and into an embedded ClickHouse (chdb, the ClickHouse
   store's tables: benchlib/clickhouse_load.py, reused too), then brings the ClickHouse rollups up to date.
2. Each read through the stores' read functions in this process (no HTTP: the Query API on ClickHouse is
   wired up separately), PostgreSQL and ClickHouse alternating call by call, ``--samples`` calls each;
   p50 and p95 in milliseconds and the PostgreSQL / ClickHouse ratio of the p95.

    .venv/bin/python bench/clickhouse_reads.py --runs 100000
    .venv/bin/python bench/clickhouse_reads.py --runs 1000000 --samples 30
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from benchlib.clickhouse_load import load_clickhouse
from benchlib.dataset import DatasetSpec
from benchlib.harness import fmt, machine_description, percentile, print_table
from benchlib.loader import load_postgres

from agenttracer.store.clickhouse.connection import Connection, connect
from agenttracer.store.clickhouse.read.session import ClickHouseReader
from agenttracer.store.clickhouse.rollup import refresh
from agenttracer.store.cursors import Cursor
from agenttracer.store.filters import RunFilters
from agenttracer.store.sql.read import compare, runs, stats
from agenttracer.store.sql.schema.engine import make_engine


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t0)


def side_by_side(cases: Cases, samples: int) -> list[list[str]]:
    """Each case ``samples`` times, PostgreSQL and ClickHouse alternating call by call: a row of name, PG
    p50 and p95, CH p50 and p95 (ms), and the PG/CH ratio of the p95."""
    rows = []
    for name, (pg, ch) in cases.items():
        pg(), ch()  # warm both
        a: list[float] = []
        b: list[float] = []
        for _ in range(samples):
            a.append(timed(pg))
            b.append(timed(ch))
        a.sort()
        b.sort()
        pa, pb = percentile(a, 95), percentile(b, 95)
        rows.append([name, fmt(percentile(a, 50)), fmt(pa), fmt(percentile(b, 50)), fmt(pb), f"{pa / pb:.1f}x"])
    return rows


Cases = dict[str, tuple[Callable[[], Any], Callable[[], Any]]]
Reads = dict[str, Callable[[], Any]]


def _reads(spec: DatasetSpec, ids: list[str], deep: Cursor | None,
           call: Callable[[Callable[..., Any]], Callable[[], Any]], runs_: Any, stats_: Any, compare_: Any) -> Reads:
    """Each Query API read as a call on one store. ``runs_``, ``stats_`` and ``compare_`` answer
    ``list_runs``, ``run_stats``, ``compare_versions``... (the SQL read modules, which take a connection
    first, or ClickHouse's reader for all three); ``call`` turns each into a call without arguments
    (a PostgreSQL connection per call, or nothing more for the reader)."""
    end = spec.end
    day = RunFilters(since=end - timedelta(days=1), until=end)
    month = RunFilters(since=end - timedelta(days=30), until=end)
    one_agent = RunFilters(agent_id="support-bot", since=month.since, until=end)
    rnd = random.Random(1)
    return {
        "runs list: first page": call(lambda *c: runs_.list_runs(*c, RunFilters(), limit=50)),
        "runs list: one agent, failures": call(
            lambda *c: runs_.list_runs(*c, RunFilters(agent_id="support-bot", status="failure"), limit=50)),
        "runs list: page 21": call(lambda *c: runs_.list_runs(*c, RunFilters(), limit=50, cursor=deep)),
        "run detail (random run)": call(lambda *c: runs_.get_run(*c, rnd.choice(ids), steps_limit=100)),
        "run id prefix (4 hex digits)": call(lambda *c: runs_.runs_with_prefix(*c, rnd.choice(ids)[:4], 1001)),
        "stats: 24 h": call(lambda *c: stats_.run_stats(*c, day, end)),
        "stats: 30 days": call(lambda *c: stats_.run_stats(*c, month, end)),
        "stats: 30 days, one agent": call(lambda *c: stats_.run_stats(*c, one_agent, end)),
        "compare: 2 versions, 30 days": call(
            lambda *c: compare_.compare_versions(*c, "support-bot", "2.5.0", "2.6.0", since=month.since, until=end)),
        "agents": call(lambda *c: runs_.list_agents(*c)),
    }


def probe_ids(list_runs: Callable[..., tuple[list[dict[str, Any]], Cursor | None]],
              spec: DatasetSpec) -> tuple[list[str], Cursor | None]:
    """The run ids the detail and prefix reads pick from (the newest 2,000 of the last 30 days) and the
    cursor of the runs list's page 21, read through one store's ``list_runs``."""
    month = RunFilters(since=spec.end - timedelta(days=30), until=spec.end)
    ids = [r["run_id"] for r in list_runs(month, limit=2000)[0]]
    deep = None
    for _ in range(20):
        _, deep = list_runs(RunFilters(), limit=50, cursor=deep)
    return ids, deep


def clickhouse_reads(reader: ClickHouseReader, spec: DatasetSpec) -> Reads:
    """Each Query API read as a call on the ClickHouse store's reader."""
    ids, deep = probe_ids(reader.list_runs, spec)
    return _reads(spec, ids, deep, lambda fn: fn, reader, reader, reader)


def read_cases(engine: sa.Engine, reader: ClickHouseReader, spec: DatasetSpec) -> Cases:
    """Each Query API read as a (PostgreSQL, ClickHouse) pair of calls on the same data set."""

    def pg(fn: Callable[..., Any]) -> Callable[[], Any]:
        def call() -> Any:
            with engine.connect() as conn:
                return fn(conn)
        return call

    def pg_list(*args: Any, **kwargs: Any) -> Any:
        with engine.connect() as conn:
            return runs.list_runs(conn, *args, **kwargs)

    ids, deep = probe_ids(pg_list, spec)
    on_pg = _reads(spec, ids, deep, pg, runs, stats, compare)
    on_ch = _reads(spec, ids, deep, lambda fn: fn, reader, reader, reader)
    return {name: (on_pg[name], on_ch[name]) for name in on_pg}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/bench_chread")
    ap.add_argument("--chdb-dir", default="/tmp/agenttracer-bench-chdb")
    ap.add_argument("--only", action="append", default=[],
                    help="measure only the reads whose name contains this text (repeatable)")
    args = ap.parse_args()
    spec = DatasetSpec(runs=args.runs)
    print(machine_description())
    loaded = load_postgres(args.pg_url, spec)
    print(f"postgresql: {loaded.runs:,} runs, {loaded.steps:,} steps — {loaded.detail}")
    ch: Connection = connect(f"chdb://{args.chdb_dir}?database=ds_{args.runs}")
    n_runs, n_steps, took, reused = load_clickhouse(ch, spec)
    how = "reused" if reused else f"loaded in {took:.0f} s"
    print(f"clickhouse (chdb): {n_runs:,} runs, {n_steps:,} steps — {how}")
    t0 = time.perf_counter()
    units = refresh(ch, now=spec.end + timedelta(days=1)).units
    print(f"clickhouse rollups: {units} (project, agent, hour) units recomputed in {time.perf_counter() - t0:.1f} s")
    engine = make_engine(loaded.url)
    reader = ClickHouseReader(ch)

    cases = read_cases(engine, reader, spec)
    if args.only:
        cases = {name: case for name, case in cases.items() if any(part in name for part in args.only)}
    read_rows = side_by_side(cases, args.samples)
    headers = ["", "PG p50 ms", "PG p95 ms", "CH p50 ms", "CH p95 ms", "PG/CH p95"]
    print_table(f"Reads, {n_runs:,} runs / {n_steps:,} steps, in-process", headers, read_rows)
    engine.dispose()
    ch.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
