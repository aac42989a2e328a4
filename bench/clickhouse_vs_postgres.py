"""ClickHouse beside PostgreSQL on the same generated data, in one run: bytes per step and exact percentiles.

1. Loads the data set (benchlib/dataset.py: six agents, versions, environments, failures, retries, ~10
   steps per run over 30 days) into PostgreSQL with the shipped migrations and COPY (benchlib/loader.py),
   or reuses it when an earlier invocation loaded the same size.
2. Copies the same rows into ClickHouse, embedded through chdb, in the ClickHouse store's own schema
   (``store/clickhouse/schema``: the migrations the store runs): ClickHouse reads PostgreSQL directly
   (the ``postgresql()`` table function), so both hold exactly the same runs and steps. Then
   ``OPTIMIZE … FINAL`` merges the parts, the steady state a store reaches once its background merges
   have run (a live store also holds not-yet-merged versions of runs for a while).
3. Bytes on disk per step: PostgreSQL ``pg_total_relation_size`` (heap, TOAST and every index) of
   runs, steps and failures, and of the rollup tables; ClickHouse ``system.parts.bytes_on_disk`` of the
   active parts of every table in its database. Runs are counted in (about one run per ten steps).
4. Exact p50 and p95 of step latency per agent and version over every step, no rollup help:
   PostgreSQL ``percentile_cont`` against ClickHouse ``quantilesExactInclusive`` (the same definition:
   linear interpolation between closest ranks), plain and with ``FINAL`` (deduplicated at read time,
   as an exact reader of a store that has not merged yet must; within partitions: FINAL_SETTINGS). Both
   answers are compared value by value; medians of ``--repeat`` rounds, alternating the databases.

Bars (DESIGN.md): ≤ 40 bytes per step on ClickHouse and ≥ 8× fewer than PostgreSQL; exact raw
percentiles ≥ 10× faster than PostgreSQL's ``percentile_cont`` on the same rows. This script measures
the storage side, in SQL only; ingest steps/s and query p95 through the two APIs are measured once the
ClickHouse store answers behind the store interface (the other bars of DESIGN.md's ClickHouse line).
The PostgreSQL data set is loaded without its rollups (building them is most of a load's time here):
the byte ratio is therefore against PostgreSQL's raw tables only, the conservative comparison.

    .venv/bin/python bench/clickhouse_vs_postgres.py                      # 100 k runs / ~1 M steps
    .venv/bin/python bench/clickhouse_vs_postgres.py --runs 1000000       # 1 M runs / ~10 M steps
    .venv/bin/python bench/clickhouse_vs_postgres.py --runs 10000000      # 10 M / ~100 M (disk: ~45 GB PG)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from benchlib.dataset import DatasetSpec
from benchlib.harness import fmt, machine_description, print_table
from benchlib.loader import Loaded, load_postgres
from benchlib.pg import DEFAULT_BENCH_URL, libpq_dsn

from agenttracer.store.clickhouse.connection import Connection, connect
from agenttracer.store.clickhouse.schema.migrate import upgrade

BYTES_BAR = 40.0
BYTES_RATIO_BAR = 8.0
PERCENTILE_RATIO_BAR = 10.0
# Its own directory: chdb lets one process at a time open a directory, and other benchmarks use theirs.
DEFAULT_CHDB_DIR = Path("/tmp/agenttracer-bench-ch-vs-pg")
ROLLUP_TABLES = ("rollup_runs", "rollup_steps", "rollup_failures", "rollup_dirty", "rollup_state")

_RUNS_SELECT = """
SELECT r.project, ifNull(r.agent_id, ''), r.started_at, r.run_id, ifNull(r.agent_version, ''),
       ifNull(r.environment, ''), r.status, r.ended_at, r.duration_ms, r.step_count, r.error_step_count,
       r.retry_count, r.failure_type, r.failure_code, f.step_seq, f.message, f.recorded_at, toString(r.meta),
       r.meta_removed, r.ingested_at, r.updated_at, r.root_span_id, r.root_error, r.source, r.abandoned, 1, 0
FROM {runs} AS r LEFT JOIN {failures} AS f ON f.run_id = r.run_id
"""
_RUN_COLUMNS = (
    "project, agent_id, started_at, run_id, agent_version, environment, status, ended_at, duration_ms, "
    "step_count, error_step_count, retry_count, failure_type, failure_code, failure_step_seq, failure_message, "
    "failure_recorded_at, meta, meta_removed, ingested_at, updated_at, root_span_id, root_error, source, "
    "abandoned, version, is_deleted"
)
_STEPS_SELECT = """
SELECT r.project, r.agent_id, r.agent_version, r.environment, s.run_id, s.seq, s.step_type, s.name, s.status,
       s.started_at, s.ended_at, s.latency_ms, s.attempt, s.retry_of_seq, s.parent_seq, s.error_class,
       s.failure_code, toString(s.meta), s.meta_removed, s.span_id, s.parent_span_id, 1, 0
FROM {steps} AS s INNER JOIN (SELECT run_id, project, agent_id, agent_version, environment FROM runs) AS r
     ON r.run_id = s.run_id
"""
_STEP_COLUMNS = (
    "project, agent_id, agent_version, environment, run_id, seq, step_type, name, status, started_at, ended_at, "
    "latency_ms, attempt, retry_of_seq, parent_seq, error_class, failure_code, meta, meta_removed, span_id, "
    "parent_span_id, version, is_deleted"
)

PG_PERCENTILES = """
SELECT r.agent_id, r.agent_version,
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY s.latency_ms)
FROM steps s JOIN runs r ON r.run_id = s.run_id
GROUP BY r.agent_id, r.agent_version ORDER BY 1, 2
"""
CH_PERCENTILES = """
SELECT agent_id, agent_version, quantilesExactInclusive(0.5, 0.95)(latency_ms)
FROM steps {final} GROUP BY agent_id, agent_version ORDER BY 1, 2
"""
# Every version of a row has the same sorting key, hence the same started_at and the same monthly
# partition: FINAL need not merge across partitions, and a partition already merged to one part
# costs it nothing (without this setting FINAL took ~3x as long here).
FINAL_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}

Rows = list[tuple[str, str, tuple[float, float]]]


def pg_table_function(loaded: Loaded, table: str) -> str:
    """ClickHouse's view of one table of the loaded PostgreSQL schema (benchlib/loader.py: ``ds_<runs>``)."""
    parts = urlsplit(loaded.url)
    host = f"{parts.hostname}:{parts.port or 5432}"
    return (
        f"postgresql('{host}', '{parts.path.strip('/')}', '{table}', '{parts.username or 'postgres'}', "
        f"'{parts.password or ''}', 'ds_{loaded.runs}')"
    )


def load_clickhouse(chdb_dir: Path, loaded: Loaded) -> tuple[Connection, float, bool]:
    """The same runs and steps in the ClickHouse store's schema, in database ``ds_<runs>`` (reused when
    it holds as many steps as PostgreSQL)."""
    conn = connect(f"chdb://{chdb_dir.resolve().as_posix()}?database=ds_{loaded.runs}")
    upgrade(conn)
    held = conn.query("SELECT count() FROM steps").rows[0][0]
    if held == loaded.steps:
        return conn, 0.0, True
    t0 = time.perf_counter()
    for table in ("runs", "steps", "run_keys", "step_keys"):
        conn.command(f"TRUNCATE TABLE {table}")
    tables = {t: pg_table_function(loaded, t) for t in ("runs", "steps", "failures")}
    conn.command(f"INSERT INTO runs ({_RUN_COLUMNS}) {_RUNS_SELECT.format(**tables)}")
    conn.command(f"INSERT INTO steps ({_STEP_COLUMNS}) {_STEPS_SELECT.format(**tables)}",
                 settings={"max_memory_usage": 0})
    for table in ("runs", "steps"):
        conn.command(f"OPTIMIZE TABLE {table} FINAL")
    return conn, time.perf_counter() - t0, False


def pg_bytes(loaded: Loaded) -> tuple[int, int]:
    """(runs + steps + failures, rollup tables) in bytes, indexes and TOAST included."""
    with psycopg.connect(libpq_dsn(loaded.url)) as conn:
        def size(tables: tuple[str, ...]) -> int:
            sql = "SELECT sum(pg_total_relation_size(to_regclass(t))) FROM unnest(%s::text[]) AS t"
            return int(conn.execute(sql, (list(tables),)).fetchone()[0] or 0)  # type: ignore[index]

        return size(("runs", "steps", "failures")), size(ROLLUP_TABLES)


def ch_bytes(conn: Connection) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows, bytes on disk, uncompressed bytes) of the active parts."""
    result = conn.query(
        "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
        "WHERE database = {db:String} AND active GROUP BY table ORDER BY table",
        {"db": conn.database},
    )
    return {str(t): (int(r), int(b), int(u)) for t, r, b, u in result.rows}


def pg_percentiles(loaded: Loaded) -> Rows:
    with psycopg.connect(libpq_dsn(loaded.url)) as conn:
        conn.execute("SET statement_timeout = 0")
        return [(a, v, (float(p[0]), float(p[1]))) for a, v, p in conn.execute(PG_PERCENTILES).fetchall()]


def ch_percentiles(conn: Connection, final: bool) -> Rows:
    sql = CH_PERCENTILES.format(final="FINAL" if final else "")
    rows = conn.query(sql, settings=FINAL_SETTINGS if final else None).rows
    return [(str(a), str(v), (float(p[0]), float(p[1]))) for a, v, p in rows]


def max_relative_difference(a: Rows, b: Rows) -> float:
    if [(x[0], x[1]) for x in a] != [(y[0], y[1]) for y in b]:
        raise SystemExit("the two databases returned different groups: the copies differ")
    pairs = [(p, q) for x, y in zip(a, b, strict=True) for p, q in zip(x[2], y[2], strict=True)]
    return max(abs(p - q) / max(abs(p), 1e-12) for p, q in pairs)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the data set (~10 steps each)")
    parser.add_argument("--pg-url", default=DEFAULT_BENCH_URL, help="PostgreSQL database for the data sets")
    parser.add_argument("--chdb-dir", type=Path, default=DEFAULT_CHDB_DIR, help="chdb data directory")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the percentile queries")
    args = parser.parse_args()

    print(machine_description())
    loaded = load_postgres(args.pg_url, DatasetSpec(runs=args.runs), rollups=False)
    print(f"PostgreSQL: {loaded.runs:,} runs / {loaded.steps:,} steps, {loaded.detail}")
    conn, took, reused = load_clickhouse(args.chdb_dir, loaded)
    print(f"ClickHouse (chdb, {conn.query('SELECT version()').rows[0][0]}): "
          + ("reused" if reused else f"copied from PostgreSQL and merged in {took:.1f} s"))

    steps = loaded.steps
    pg_data, pg_rollups = pg_bytes(loaded)
    parts = ch_bytes(conn)
    ch_data = sum(b for t, (_, b, _) in parts.items() if t in ("runs", "steps"))
    ch_all = sum(b for _, b, _ in parts.values())
    rows = [
        ["PostgreSQL: runs + steps + failures, with indexes", fmt(pg_data / 2**20), fmt(pg_data / steps)],
        ["PostgreSQL: rollup tables (empty unless the data set was loaded with them)", fmt(pg_rollups / 2**20),
         fmt(pg_rollups / steps)],
        *[[f"ClickHouse: {t} ({r:,} rows; {u / max(b, 1):.1f}x compressed)", fmt(b / 2**20), fmt(b / steps)]
          for t, (r, b, u) in parts.items()],
        ["ClickHouse: runs + steps", fmt(ch_data / 2**20), fmt(ch_data / steps)],
        ["ClickHouse: every table", fmt(ch_all / 2**20), fmt(ch_all / steps)],
    ]
    print_table(f"Bytes on disk, {steps:,} steps", ["", "MiB", "bytes/step"], rows)
    # Conservative: ClickHouse with every table it has against PostgreSQL without its rollups.
    ratio = pg_data / ch_all
    met = ch_all / steps <= BYTES_BAR and ratio >= BYTES_RATIO_BAR
    print(f"bar: <= {BYTES_BAR:.0f} bytes/step on ClickHouse and >= {BYTES_RATIO_BAR:.0f}x fewer than PostgreSQL: "
          f"{ch_all / steps:.1f} bytes/step, {ratio:.1f}x fewer than PostgreSQL without its rollups -> "
          + ("met" if met else "NOT MET"))

    times: dict[str, list[float]] = {"pg": [], "ch": [], "ch_final": []}
    answers: dict[str, Rows] = {}
    for _ in range(args.repeat):  # alternating, so background load hits all three alike
        for name, run in (("pg", lambda: pg_percentiles(loaded)), ("ch", lambda: ch_percentiles(conn, False)),
                          ("ch_final", lambda: ch_percentiles(conn, True))):
            took, answers[name] = timed(run)
            times[name].append(took)
    pg_median = statistics.median(times["pg"])
    rows = []
    for name, label in (("pg", "PostgreSQL percentile_cont (join runs)"),
                        ("ch", "ClickHouse quantilesExactInclusive"),
                        ("ch_final", "ClickHouse quantilesExactInclusive, FINAL")):
        median = statistics.median(times[name])
        diff = max_relative_difference(answers["pg"], answers[name])
        rows.append([label, fmt(median * 1000), fmt(min(times[name]) * 1000), fmt(max(times[name]) * 1000),
                     f"{pg_median / median:.1f}x", f"{diff:.1e}"])
    print_table(f"Exact p50/p95 of step latency per agent and version over all {steps:,} steps "
                f"({len(answers['pg'])} groups, {args.repeat} rounds)",
                ["", "median ms", "min ms", "max ms", "vs PG", "max rel. diff"], rows)
    slowest_ch = max(statistics.median(times["ch"]), statistics.median(times["ch_final"]))
    print(f"bar: exact raw percentiles >= {PERCENTILE_RATIO_BAR:.0f}x faster than percentile_cont: "
          f"{pg_median / slowest_ch:.1f}x (FINAL included) -> "
          + ("met" if pg_median / slowest_ch >= PERCENTILE_RATIO_BAR else "NOT MET"))
    conn.close()


if __name__ == "__main__":
    main()
