"""The writer's per-batch statements, sent through the DBAPI cursor, for SQLite and PostgreSQL.

Why not SQLAlchemy Core here: a batch runs about ten statements, and for each one SQLAlchemy built
cache keys for ``IN`` lists, processed parameters and wrapped results — more CPU than the database
spent on most of them, and on SQLite all of it inside the single-writer lock. These statements use
fixed SQL text (cached per parameter count on SQLite, arrays on PostgreSQL) and the column types'
own bind and result processors, so every value is written and read exactly as SQLAlchemy writes
and reads it (``tests/store/test_writer_sql.py`` compares the stored bytes).

``statements_for(conn)`` returns the implementation for the connection's dialect; all methods take
the live ``sa.Connection`` of the writer's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from agenttracer.store.sql.dialect import POSTGRESQL, bind_processor, check_supported, result_processor
from agenttracer.store.sql.schema.tables import RUN_SOURCES, UTCDateTime, runs
from agenttracer.store.sql.write.step_rows import STEP_ROW_COLUMNS, timestamp_binder

# Every column of runs in table order: the layout of a run row as the driver reads and writes it.
RUN_ROW_COLUMNS: tuple[str, ...] = tuple(c.name for c in runs.columns)
# What _update_runs writes, in this order, followed by the run_id of the row to update.
RUN_UPDATE_COLUMNS = (
    "agent_id",
    "agent_version",
    "environment",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "failure_type",
    "failure_code",
    "meta",
    "meta_removed",
    "updated_at",
)
_STEP_COLUMN_LIST = ", ".join(STEP_ROW_COLUMNS)
_RUN_COLUMN_LIST = ", ".join(RUN_ROW_COLUMNS)
_STEP_STAGING = "at_steps_staged"
# Binary COPY needs every column's exact type.
_STEP_BINARY_TYPES = {
    "run_id": "varchar",
    "seq": "int4",
    "step_type": "varchar",
    "name": "varchar",
    "status": "varchar",
    "started_at": "timestamptz",
    "ended_at": "timestamptz",
    "latency_ms": "float8",
    "attempt": "int4",
    "retry_of_seq": "int4",
    "parent_seq": "int4",
    "error_class": "varchar",
    "failure_code": "varchar",
    "meta": "jsonb",
    "meta_removed": "int4",
    "span_id": "varchar",
    "parent_span_id": "varchar",
}
assert tuple(_STEP_BINARY_TYPES) == STEP_ROW_COLUMNS, "step_rows.STEP_ROW_COLUMNS changed: update the COPY types"
_STEP_BINARY_TYPES_LIST = list(_STEP_BINARY_TYPES.values())
# Counters are recomputed from the steps table, so they stay exact under replays and any order:
# one scan of the run's steps for all three.
_COUNTERS = (
    "(step_count, error_step_count, retry_count) = (SELECT count(*), count(CASE WHEN s.status = 'error' THEN 1 END),"
    " count(CASE WHEN s.attempt > 1 THEN 1 END) FROM steps s WHERE s.run_id = runs.run_id)"
)
# The same on SQLite's chunked update, where only the rows flagged b_recount are counted.
_SQLITE_COUNTERS = (
    "(step_count, error_step_count, retry_count) = (SELECT"
    " CASE WHEN v.b_recount THEN count(*) ELSE runs.step_count END,"
    " CASE WHEN v.b_recount THEN count(CASE WHEN s.status = 'error' THEN 1 END) ELSE runs.error_step_count END,"
    " CASE WHEN v.b_recount THEN count(CASE WHEN s.attempt > 1 THEN 1 END) ELSE runs.retry_count END"
    " FROM steps s WHERE s.run_id = runs.run_id AND v.b_recount)"
)

Processor = Callable[[Any], Any]
_CONVERTED = (UTCDateTime, sa.JSON, sa.Boolean)


class _Statements:
    """What both dialects share: the column processors, and turning rows into dicts and back."""

    def __init__(self, dialect: sa.Dialect) -> None:
        # Only timestamps, JSON and booleans need converting when a row of runs is read (see _result_processor).
        self._read = [
            (name, _result_processor(runs.c[name], dialect))
            for name in RUN_ROW_COLUMNS
            if isinstance(runs.c[name].type, _CONVERTED)
        ]
        # Timestamps (four per updated run, under SQLite's writer lock) take the cheap UTC formatting.
        self._write = [
            timestamp_binder(runs.c[name], dialect)
            if isinstance(runs.c[name].type, UTCDateTime)
            else bind_processor(runs.c[name], dialect)
            for name in RUN_UPDATE_COLUMNS
        ]
        self._time = timestamp_binder(runs.c.started_at, dialect)

    def run_dicts(self, rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            data = dict(zip(RUN_ROW_COLUMNS, row, strict=True))
            for name, proc in self._read:
                data[name] = proc(data[name])
            out.append(data)
        return out

    def update_row(self, run_id: str, values: dict[str, Any]) -> tuple[Any, ...]:
        """The bound values of one run's update: RUN_UPDATE_COLUMNS, then the run_id."""
        return (*(proc(values[name]) for name, proc in zip(RUN_UPDATE_COLUMNS, self._write, strict=True)), run_id)


class SqliteStatements(_Statements):
    """SQLite: ``IN (?, ?, …)`` and multi-row ``VALUES`` whose SQL text is cached per row count.

    Rows go in as few multi-row statements as possible rather than by ``executemany``: the driver
    releases the GIL around every row it steps, and with other request threads busy in Python each
    release cost the writer ~50 µs of waiting to get it back (measured in bench/ingest_throughput.py),
    all of it inside the single-writer lock. Chunks are powers of two (256, 128, …, 1), so a batch
    takes a handful of statements and only a handful of distinct SQL texts exist.
    """

    def insert_placeholders(
        self, conn: sa.Connection, starts: list[tuple[str, datetime]], now: datetime, project: str, source: str
    ) -> set[str]:
        """Create the runs not stored yet, in ``project`` and owned by ``source`` (RUN_SOURCES); return their
        run_ids."""
        stamp = self._time(now)
        cursor = _cursor(conn)
        cursor.execute(_SQLITE_PROJECT_SQL, (project, stamp))
        params: list[Any] = []
        for run_id, start in starts:
            params += (run_id, project, self._time(start), stamp, stamp)
        rows = cursor.execute(_sqlite_placeholders_sql(len(starts), source), params).fetchall()
        return {row[0] for row in rows}

    def load_runs(self, conn: sa.Connection, run_ids: list[str]) -> list[dict[str, Any]]:
        sql = f"SELECT {_RUN_COLUMN_LIST} FROM runs WHERE run_id IN ({_marks(len(run_ids))}) ORDER BY run_id"
        return self.run_dicts(_cursor(conn).execute(sql, run_ids).fetchall())

    def stored_steps(self, conn: sa.Connection, run_ids: list[str]) -> set[tuple[str, int]]:
        sql = f"SELECT run_id, seq FROM steps WHERE run_id IN ({_marks(len(run_ids))})"
        return {(row[0], row[1]) for row in _cursor(conn).execute(sql, run_ids)}

    def insert_steps(self, conn: sa.Connection, rows: list[tuple[Any, ...]], *, safe: bool = False) -> None:
        # ON CONFLICT DO NOTHING in every statement: nothing more is needed for ``safe``.
        cursor = _cursor(conn)
        for chunk in _chunks(rows):
            cursor.execute(_sqlite_insert_steps_sql(len(chunk)), [v for row in chunk for v in row])

    def update_runs(self, conn: sa.Connection, rows: list[tuple[Any, ...]], recount: set[str]) -> None:
        """Write the run-level fields and, for the runs in ``recount``, recompute the counters from
        the steps table — one ``UPDATE … FROM (VALUES …)`` per chunk."""
        cursor = _cursor(conn)
        flagged = [(*row, row[-1] in recount) for row in rows]
        for chunk in _chunks(flagged):
            cursor.execute(_sqlite_update_runs_sql(len(chunk)), [v for row in chunk for v in row])


def _chunks(rows: list[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    start, size = 0, 256
    while start < len(rows):
        while size > len(rows) - start:
            size //= 2
        yield rows[start : start + size]
        start += size


@lru_cache(maxsize=16)
def _sqlite_insert_steps_sql(count: int) -> str:
    # ON CONFLICT stays as a safety net: a replay can never fail the batch.
    row = f"({', '.join('?' * len(STEP_ROW_COLUMNS))})"
    values = ", ".join([row] * count)
    return f"INSERT INTO steps ({_STEP_COLUMN_LIST}) VALUES {values} ON CONFLICT (run_id, seq) DO NOTHING"


@lru_cache(maxsize=16)
def _sqlite_update_runs_sql(count: int) -> str:
    names = (*RUN_UPDATE_COLUMNS, "b_run_id", "b_recount")
    row = f"({', '.join('?' * len(names))})"
    sets = ", ".join(f"{name} = v.{name}" for name in RUN_UPDATE_COLUMNS)
    return (
        f"WITH v({', '.join(names)}) AS (VALUES {', '.join([row] * count)})"
        f" UPDATE runs SET {sets}, {_SQLITE_COUNTERS} FROM v WHERE runs.run_id = v.b_run_id"
    )


@lru_cache(maxsize=256)
def _marks(count: int) -> str:
    return ", ".join("?" * count)


# The batch's project exists from its first write on (`agenttracer projects list` shows it).
_SQLITE_PROJECT_SQL = "INSERT INTO projects (slug, created_at) VALUES (?, ?) ON CONFLICT (slug) DO NOTHING"


@lru_cache(maxsize=512)
def _sqlite_placeholders_sql(count: int, source: str) -> str:
    if source not in RUN_SOURCES:  # it becomes SQL text: only the known words
        raise ValueError(f"unknown run source {source!r}")
    values = ", ".join([f"(?, ?, 'running', ?, '{{}}', ?, ?, '{source}')"] * count)
    return (
        "INSERT INTO runs (run_id, project, status, started_at, meta, ingested_at, updated_at, source)"
        f" VALUES {values}"
        " ON CONFLICT (run_id) DO NOTHING RETURNING run_id"
    )


class PostgresStatements(_Statements):
    """PostgreSQL: arrays (``= ANY(%s)``, ``unnest``) so every statement's text is fixed; steps by COPY."""

    def __init__(self, dialect: sa.Dialect) -> None:
        super().__init__(dialect)
        # psycopg sends str as text; the JSONB column needs the cast SQLAlchemy would have added.
        sets = ", ".join(f"{name} = %s::jsonb" if name == "meta" else f"{name} = %s" for name in RUN_UPDATE_COLUMNS)
        self._update = f"UPDATE runs SET {sets} WHERE run_id = %s"

    def insert_placeholders(
        self, conn: sa.Connection, starts: list[tuple[str, datetime]], now: datetime, project: str, source: str
    ) -> set[str]:
        """Create the runs not stored yet, in ``project`` and owned by ``source`` (RUN_SOURCES); return their
        run_ids."""
        # Two arrays instead of a multi-row VALUES list: the SQL text is the same for every batch, so
        # the driver parses it once (a ~40-row VALUES list was re-parsed per batch: ~5 µs per step).
        stamp = self._time(now)
        with _dbapi(conn).cursor() as cur:
            # The batch's project exists from its first write on (`agenttracer projects list` shows it).
            cur.execute(
                "INSERT INTO projects (slug, created_at) VALUES (%s, %s) ON CONFLICT (slug) DO NOTHING",
                (project, stamp),
            )
            cur.execute(
                "INSERT INTO runs (run_id, project, status, started_at, meta, ingested_at, updated_at, source)"
                " SELECT r, %(project)s, 'running', s, '{}'::jsonb, %(now)s, %(now)s, %(source)s"
                " FROM unnest(%(ids)s::varchar[], %(starts)s::timestamptz[]) AS t(r, s)"
                " ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
                {
                    "ids": [r for r, _ in starts],
                    "starts": [self._time(t) for _, t in starts],
                    "now": stamp,
                    "project": project,
                    "source": source,
                },
            )
            return {row[0] for row in cur.fetchall()}

    def load_runs(self, conn: sa.Connection, run_ids: list[str]) -> list[dict[str, Any]]:
        # FOR UPDATE in run_id order: concurrent batches lock the same runs in the same order.
        with _dbapi(conn).cursor() as cur:
            cur.execute(
                f"SELECT {_RUN_COLUMN_LIST} FROM runs WHERE run_id = ANY(%s::varchar[]) ORDER BY run_id FOR UPDATE",
                (run_ids,),
            )
            return self.run_dicts(cur.fetchall())

    def stored_steps(self, conn: sa.Connection, run_ids: list[str]) -> set[tuple[str, int]]:
        with _dbapi(conn).cursor() as cur:
            cur.execute("SELECT run_id, seq FROM steps WHERE run_id = ANY(%s::varchar[])", (run_ids,))
            return {(row[0], row[1]) for row in cur.fetchall()}

    def insert_steps(self, conn: sa.Connection, rows: list[tuple[Any, ...]], *, safe: bool = False) -> None:
        """Binary COPY straight into steps. The batch's runs are locked and their stored steps were
        read under the lock, so these rows cannot collide with stored ones; should one ever do, the
        COPY fails with a unique violation and the writer retries the batch with ``safe=True``: COPY
        into a session-private staging table, then ``INSERT … SELECT … ON CONFLICT DO NOTHING``.

        Measured with bench/ingest_throughput.py: COPY + INSERT … SELECT cost half the writer's CPU
        per step of a pipelined executemany (and ~8x less than one multi-row INSERT the driver
        re-parses per batch); the binary format then cost the server a third of the text format's
        CPU per row (no timestamp formatting); copying straight into steps saves the database the
        staging table's write, its truncation at commit and the conflict checks.
        """
        with _dbapi(conn).cursor() as cur:
            target = "steps"
            if safe:
                target = _STEP_STAGING
                cur.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STEP_STAGING} (LIKE steps INCLUDING DEFAULTS)"
                    " ON COMMIT DELETE ROWS"
                )
            with cur.copy(f"COPY {target} ({_STEP_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_STEP_BINARY_TYPES_LIST)
                for row in rows:
                    copy.write_row(row)
            if safe:
                # Committed or rolled back, the staging table is empty again afterwards.
                cur.execute(
                    f"INSERT INTO steps ({_STEP_COLUMN_LIST}) SELECT {_STEP_COLUMN_LIST} FROM {_STEP_STAGING}"
                    " ON CONFLICT (run_id, seq) DO NOTHING"
                )

    def update_runs(self, conn: sa.Connection, rows: list[tuple[Any, ...]], recount: set[str]) -> None:
        """Write the run-level fields, then recompute the counters of the runs in ``recount`` from the
        steps table."""
        with _dbapi(conn).cursor() as cur:
            cur.executemany(self._update, rows)
            if recount:
                cur.execute(f"UPDATE runs SET {_COUNTERS} WHERE run_id = ANY(%s::varchar[])", (sorted(recount),))


Statements = SqliteStatements | PostgresStatements


def statements_for(dialect: sa.Dialect) -> Statements:
    if check_supported(dialect) == POSTGRESQL:
        return PostgresStatements(dialect)
    return SqliteStatements(dialect)


def _dbapi(conn: sa.Connection) -> Any:
    return conn.connection.driver_connection


def _cursor(conn: sa.Connection) -> Any:
    # sqlite3 cursors need no closing beyond garbage collection; one per statement keeps them simple.
    return _dbapi(conn).cursor()


def _result_processor(column: sa.Column[Any], dialect: sa.Dialect) -> Processor:
    # Only timestamps, JSON and booleans (integers on SQLite) are converted when SQLAlchemy reads a row of
    # runs; the drivers return strings, integers and floats as they are (and numeric processors want the
    # driver's type code).
    if not isinstance(column.type, _CONVERTED):
        return _identity
    return result_processor(column, dialect)


def _identity(value: Any) -> Any:
    return value
