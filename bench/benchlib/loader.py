"""Load a generated data set into the real schema, fast, and reuse it when it is already there.

PostgreSQL: the schema is made by the shipped Alembic migrations, then its secondary indexes and
constraints are set aside, the rows are streamed in with COPY (runs, steps and failures on three
connections in one pass of the generator), and the very same index and constraint definitions are
rebuilt, followed by VACUUM ANALYZE; COPY bypasses the writer's dirty marks, so the rollups are then
built by the shipped refresher (``build_rollups``, timed and printed): the end state is the migrated
schema holding the data, as if it had been ingested, only minutes instead of hours to get there.

SQLite: the migrated file is filled with ``executemany`` in large transactions.

Each data set lives in its own PostgreSQL schema (``ds_<runs>``) or SQLite file and carries a
``bench_dataset`` marker row (generator version, seed, size, schema revision). A later invocation with
the same spec reuses it; when only the schema revision moved on, the new migrations are applied to
the loaded data (which also measures how long those migrations take at that size).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa

from agenttracer.store.sql.rollup.refresh import refresh
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import current_revision, head_revision, is_known_revision, upgrade

from .dataset import (
    FAILURE_COLUMNS,
    GENERATOR_VERSION,
    RUN_COLUMNS,
    STEP_COLUMNS,
    DatasetSpec,
    Generator,
    copy_lines,
    sqlite_rows,
)
from .pg import ensure_database, libpq_dsn, schema_url

DATA_TABLES = ("runs", "steps", "failures")
CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Loaded:
    url: str  # SQLAlchemy URL of the loaded database (search_path bound for PostgreSQL)
    runs: int
    steps: int
    revision: str | None
    reused: bool
    seconds: float  # load (or migrate) time in this invocation; 0 when reused as is
    detail: str


def build_rollups(url: str) -> tuple[float, str]:
    """Bring the rollups up to date through the shipped refresher (COPY bypassed the writer's dirty marks).

    A fresh load has nothing rolled up, so this builds every hour and day; a reused data set from
    before the rollup migration gets them built here once; an up-to-date one costs a few queries.
    """
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        result = refresh(engine)
    finally:
        engine.dispose()
    return result.seconds, f"rollups: {result.hours} hours, {result.days} days in {result.seconds:.1f} s"


def _marker_matches(row: tuple[object, ...] | None, spec: DatasetSpec) -> bool:
    return row is not None and tuple(row[:3]) == (GENERATOR_VERSION, spec.seed, spec.runs)


# --- PostgreSQL -----------------------------------------------------------------------------------


def load_postgres(
    base_url: str, spec: DatasetSpec, *, force: bool = False, log: bool = True, rollups: bool = True
) -> Loaded:
    """The data set in schema ``ds_<runs>`` of ``base_url``'s database. ``rollups`` False leaves the rollup
    tables as they are (empty after a fresh load): for benchmarks that read only runs and steps, which
    then skip the longest part of a load."""
    ensure_database(base_url)
    schema = f"ds_{spec.runs}"
    url = schema_url(base_url, schema)
    dsn = libpq_dsn(url)
    with psycopg.connect(libpq_dsn(base_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    with psycopg.connect(dsn, autocommit=True) as conn:
        marker = None
        has_marker = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'bench_dataset'",
            (schema,),
        ).fetchone()
        if has_marker:
            marker = conn.execute(
                "SELECT generator_version, seed, runs, steps, revision FROM bench_dataset"
            ).fetchone()
    head = head_revision()
    if not force and _marker_matches(marker, spec):
        assert marker is not None
        if marker[4] == head or not is_known_revision(marker[4]):
            # A revision this code does not know was applied by a newer checkout (a branch adding an
            # index, say): the tables this code reads are still there, so measure on them as they are.
            took, rolled = build_rollups(url) if rollups else (0.0, "rollups not built")
            note = "" if marker[4] == head else f" (at {marker[4]}, newer than this code's {head})"
            return Loaded(url, spec.runs, int(marker[3]), marker[4], True, took, f"reused as loaded{note}; {rolled}")
        t0 = time.perf_counter()
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        upgrade(engine)
        engine.dispose()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE bench_dataset SET revision = %s", (head,))
            for table in DATA_TABLES:
                conn.execute(f"ANALYZE {table}")
        migrated = time.perf_counter() - t0
        _, rolled = build_rollups(url) if rollups else (0.0, "rollups not built")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")  # the rollup tables are new: give the planner their statistics
        took = time.perf_counter() - t0
        return Loaded(url, spec.runs, int(marker[3]), head, True, took,
                      f"reused; migrated {marker[4]} -> {head} on the loaded data in {migrated:.1f} s; {rolled}")

    t0 = time.perf_counter()
    with psycopg.connect(libpq_dsn(base_url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    upgrade(engine)
    revision = current_revision(engine)
    engine.dispose()
    timings: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        saved = _set_aside_indexes(conn, schema)
        t = time.perf_counter()
        n_steps = _copy_all(dsn, spec, log=log)
        timings["copy"] = time.perf_counter() - t
        t = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        for statement in saved:
            conn.execute(statement)  # type: ignore[arg-type]
        timings["indexes"] = time.perf_counter() - t
        t = time.perf_counter()
        for table in DATA_TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")
        timings["vacuum"] = time.perf_counter() - t
        if rollups:
            timings["rollups"], _ = build_rollups(url)
        conn.execute("VACUUM ANALYZE")
        conn.execute(
            "CREATE TABLE bench_dataset (generator_version int, seed bigint, runs int, steps bigint, revision text,"
            " end_at timestamptz, loaded_at timestamptz DEFAULT now(), load_seconds float)"
        )
        took = time.perf_counter() - t0
        conn.execute(
            "INSERT INTO bench_dataset VALUES (%s, %s, %s, %s, %s, %s, now(), %s)",
            (GENERATOR_VERSION, spec.seed, spec.runs, n_steps, revision, spec.end, took),
        )
    detail = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    return Loaded(url, spec.runs, n_steps, revision, False, took, f"loaded in {took:.1f} s ({detail})")


def _set_aside_indexes(conn: psycopg.Connection, schema: str) -> list[str]:
    """Drop the data tables' indexes and constraints; return the statements that rebuild them."""
    tables = list(DATA_TABLES)
    # Foreign keys of other tables that reference a data table (step_self_time -> runs) go too: they
    # depend on the primary key being dropped.
    constraints = conn.execute(
        "SELECT c.conname, t.relname, c.contype, pg_get_constraintdef(c.oid) FROM pg_constraint c"
        " JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " LEFT JOIN pg_class r ON r.oid = c.confrelid"
        " WHERE n.nspname = %s AND ((t.relname = ANY(%s) AND c.contype IN ('p', 'u', 'f'))"
        "  OR (c.contype = 'f' AND r.relname = ANY(%s)))",
        (schema, tables, tables),
    ).fetchall()
    owned = {row[0] for row in constraints}
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = ANY(%s)",
        (schema, tables),
    ).fetchall()
    rebuild_keys = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for n, t, k, d in constraints if k in "pu"]
    rebuild_fks = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for n, t, k, d in constraints if k == "f"]
    rebuild_ix = [d for n, d in indexes if n not in owned]
    for name, table, _kind, _d in sorted(constraints, key=lambda r: r[2] != "f"):  # foreign keys first
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')  # type: ignore[arg-type]
    for name, _d in indexes:
        if name not in owned:
            conn.execute(f'DROP INDEX "{schema}"."{name}"')  # type: ignore[arg-type]
    return rebuild_keys + rebuild_ix + rebuild_fks


def _copy_all(dsn: str, spec: DatasetSpec, *, log: bool) -> int:
    """Stream the generated rows into runs, steps and failures; return the number of steps."""
    gen = Generator(spec)
    n_steps = 0
    started = time.perf_counter()
    with (
        psycopg.connect(dsn) as c_runs,
        psycopg.connect(dsn) as c_steps,
        psycopg.connect(dsn) as c_fail,
    ):
        for c in (c_runs, c_steps, c_fail):
            c.execute("SET synchronous_commit = off")
        with (
            c_runs.cursor().copy(f"COPY runs ({', '.join(RUN_COLUMNS)}) FROM STDIN") as cp_runs,
            c_steps.cursor().copy(f"COPY steps ({', '.join(STEP_COLUMNS)}) FROM STDIN") as cp_steps,
            c_fail.cursor().copy(f"COPY failures ({', '.join(FAILURE_COLUMNS)}) FROM STDIN") as cp_fail,
        ):
            run_buf: list[str] = []
            step_buf: list[str] = []
            fail_buf: list[str] = []
            size = 0
            for i, run in enumerate(gen.runs(), 1):
                r, s, f = copy_lines(run)
                run_buf.append(r)
                step_buf.append(s)
                n_steps += len(run.shape.steps)
                size += len(s)
                if f is not None:
                    fail_buf.append(f)
                if size >= CHUNK_BYTES:
                    cp_steps.write("".join(step_buf))
                    cp_runs.write("".join(run_buf))
                    if fail_buf:
                        cp_fail.write("".join(fail_buf))
                    run_buf.clear()
                    step_buf.clear()
                    fail_buf.clear()
                    size = 0
                if log and i % 100_000 == 0:
                    rate = n_steps / (time.perf_counter() - started)
                    print(f"  .. {i:,} runs, {n_steps:,} steps ({rate:,.0f} steps/s)", flush=True)
            cp_steps.write("".join(step_buf))
            cp_runs.write("".join(run_buf))
            if fail_buf:
                cp_fail.write("".join(fail_buf))
        for c in (c_runs, c_steps, c_fail):
            c.commit()
    return n_steps


def drop_postgres(base_url: str, runs: int) -> None:
    with psycopg.connect(libpq_dsn(base_url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "ds_{runs}" CASCADE')


# --- SQLite ---------------------------------------------------------------------------------------


def load_sqlite(path: Path, spec: DatasetSpec, *, force: bool = False) -> Loaded:
    url = f"sqlite:///{path.as_posix()}"
    head = head_revision()
    if path.exists() and not force:
        with sqlite3.connect(path) as conn:
            try:
                marker = conn.execute(
                    "SELECT generator_version, seed, runs, steps, revision FROM bench_dataset"
                ).fetchone()
            except sqlite3.OperationalError:
                marker = None
        if _marker_matches(marker, spec):
            assert marker is not None
            if marker[4] == head or not is_known_revision(marker[4]):
                took, rolled = build_rollups(url)
                note = "" if marker[4] == head else f" (at {marker[4]}, newer than this code's {head})"
                return Loaded(url, spec.runs, int(marker[3]), marker[4], True, took,
                              f"reused as loaded{note}; {rolled}")
            t0 = time.perf_counter()
            upgrade(url)
            _, rolled = build_rollups(url)
            with sqlite3.connect(path) as conn:
                conn.execute("UPDATE bench_dataset SET revision = ?", (head,))
                conn.execute("ANALYZE")
            took = time.perf_counter() - t0
            return Loaded(url, spec.runs, int(marker[3]), head, True, took,
                          f"reused; migrated {marker[4]} -> {head}; {rolled}; {took:.1f} s in all")
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    upgrade(engine)
    revision = current_revision(engine)
    engine.dispose()
    n_steps = 0
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        run_sql = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
        step_sql = f"INSERT INTO steps ({', '.join(STEP_COLUMNS)}) VALUES ({', '.join('?' * len(STEP_COLUMNS))})"
        fail_sql = (f"INSERT INTO failures ({', '.join(FAILURE_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(FAILURE_COLUMNS))})")
        run_rows: list[tuple[object, ...]] = []
        step_rows: list[tuple[object, ...]] = []
        fail_rows: list[tuple[object, ...]] = []

        def flush() -> None:
            with conn:
                conn.executemany(run_sql, run_rows)
                conn.executemany(step_sql, step_rows)
                conn.executemany(fail_sql, fail_rows)
            run_rows.clear()
            step_rows.clear()
            fail_rows.clear()

        for run in Generator(spec).runs():
            r, s, f = sqlite_rows(run)
            run_rows.append(r)
            step_rows.extend(s)
            n_steps += len(s)
            if f is not None:
                fail_rows.append(f)
            if len(step_rows) >= 200_000:
                flush()
        flush()
        _, rolled = build_rollups(url)
        conn.execute("ANALYZE")
        took = time.perf_counter() - t0
        conn.execute(
            "CREATE TABLE bench_dataset (generator_version int, seed int, runs int, steps int, revision text,"
            " end_at text, load_seconds float)"
        )
        with conn:
            conn.execute("INSERT INTO bench_dataset VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (GENERATOR_VERSION, spec.seed, spec.runs, n_steps, revision, spec.end.isoformat(), took))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return Loaded(url, spec.runs, n_steps, revision, False, took, f"loaded in {took:.1f} s ({rolled})")
