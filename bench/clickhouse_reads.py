"""ClickHouse against PostgreSQL on the same generated runs: exact percentiles over every step, and the
Query API's reads (runs list, run detail, stats 24 h and 30 days, compare, agents).

1. Generates the data set (benchlib/dataset.py) and loads it into PostgreSQL (COPY, indexes, rollups:
   benchlib/loader.py, reused when already loaded) and into an embedded ClickHouse (chdb, the ClickHouse
   store's tables: benchlib/clickhouse_load.py, reused too), then brings the ClickHouse rollups up to date.
2. Exact p50/p95/p99 of step latency by agent and version over all steps, no rollup: PostgreSQL's
   ``percentile_cont`` (steps joined to runs for the identity) against ClickHouse's
   ``quantilesExactInclusive`` (the same definition) over the steps' newest versions (FINAL) and plain.
3. Each read through the stores' read functions in this process (no HTTP: the Query API on ClickHouse is
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
from agenttracer.store.filters import RunFilters
from agenttracer.store.sql.read import compare, runs, stats
from agenttracer.store.sql.schema.engine import make_engine

PG_EXACT = """
SELECT r.agent_id, r.agent_version, percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY s.latency_ms)
FROM steps s JOIN runs r USING (run_id) GROUP BY 1, 2
"""
# The store's reads take newest versions with FINAL (per partition); the loaded data holds one version of
# each row, so the plain form gives the same answer and shows what the deduplication costs.
CH_EXACT_FINAL = """
SELECT agent_id, agent_version, quantilesExactInclusive(0.5, 0.95, 0.99)(latency_ms) FROM steps FINAL
GROUP BY agent_id, agent_version SETTINGS do_not_merge_across_partitions_select_final = 1
"""
CH_EXACT_PLAIN = """
SELECT agent_id, agent_version, quantilesExactInclusive(0.5, 0.95, 0.99)(latency_ms) FROM steps
GROUP BY agent_id, agent_version
"""


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t0)


def side_by_side(cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], samples: int) -> list[list[str]]:
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--exact-samples", type=int, default=3)
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/bench_chread")
    ap.add_argument("--chdb-dir", default="/tmp/agenttracer-bench-chdb")
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
    units = refresh(ch, now=spec.end + timedelta(days=1))
    print(f"clickhouse rollups: {units} (project, agent, hour) units recomputed in {time.perf_counter() - t0:.1f} s")
    engine = make_engine(loaded.url)
    reader = ClickHouseReader(ch)

    def pg(fn: Callable[[sa.Connection], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with engine.connect() as conn:
                return fn(conn)
        return call

    exact_rows = []
    with engine.connect() as conn:
        exact_cases = {
            "exact p50/p95/p99 by agent+version, every step, FINAL":
                (lambda: conn.execute(sa.text(PG_EXACT)).all(), lambda: ch.query(CH_EXACT_FINAL).rows),
            "the same, plain rows": (lambda: conn.execute(sa.text(PG_EXACT)).all(),
                                     lambda: ch.query(CH_EXACT_PLAIN).rows),
        }
        exact_rows = side_by_side(exact_cases, args.exact_samples)
    end = spec.end
    day = RunFilters(since=end - timedelta(days=1), until=end)
    month = RunFilters(since=end - timedelta(days=30), until=end)
    with engine.connect() as conn:
        ids = [r["run_id"] for r in runs.list_runs(conn, month, limit=2000)[0]]
        deep = None
        for _ in range(20):
            _, deep = runs.list_runs(conn, RunFilters(), limit=50, cursor=deep)
    rnd = random.Random(1)
    cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "runs list: first page": (pg(lambda c: runs.list_runs(c, RunFilters(), limit=50)),
                                  lambda: reader.list_runs(RunFilters(), limit=50)),
        "runs list: one agent, failures": (
            pg(lambda c: runs.list_runs(c, RunFilters(agent_id="support-bot", status="failure"), limit=50)),
            lambda: reader.list_runs(RunFilters(agent_id="support-bot", status="failure"), limit=50)),
        "runs list: page 21": (pg(lambda c: runs.list_runs(c, RunFilters(), limit=50, cursor=deep)),
                               lambda: reader.list_runs(RunFilters(), limit=50, cursor=deep)),
        "run detail (random run)": (
            pg(lambda c: runs.get_run(c, rnd.choice(ids), steps_limit=100)),
            lambda: reader.get_run(rnd.choice(ids), steps_limit=100)),
        "stats: 24 h": (pg(lambda c: stats.run_stats(c, day, end)), lambda: reader.run_stats(day, end)),
        "stats: 30 days": (pg(lambda c: stats.run_stats(c, month, end)), lambda: reader.run_stats(month, end)),
        "stats: 30 days, one agent": (
            pg(lambda c: stats.run_stats(c, RunFilters(agent_id="support-bot", since=month.since, until=end), end)),
            lambda: reader.run_stats(RunFilters(agent_id="support-bot", since=month.since, until=end), end)),
        "compare: 2 versions, 30 days": (
            pg(lambda c: compare.compare_versions(c, "support-bot", "2.5.0", "2.6.0", since=month.since, until=end)),
            lambda: reader.compare_versions("support-bot", "2.5.0", "2.6.0", since=month.since, until=end)),
        "agents": (pg(lambda c: runs.list_agents(c)), lambda: reader.list_agents()),
    }
    read_rows = side_by_side(cases, args.samples)
    headers = ["", "PG p50 ms", "PG p95 ms", "CH p50 ms", "CH p95 ms", "PG/CH p95"]
    print_table(f"Exact percentiles, no rollups: {n_steps:,} steps", headers, exact_rows)
    print_table(f"Reads, {n_runs:,} runs / {n_steps:,} steps, in-process", headers, read_rows)
    engine.dispose()
    ch.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
