"""Every SQLite / PostgreSQL difference the store acts on, decided here and nowhere else.

The rest of ``store/`` asks these questions instead of comparing ``dialect.name`` itself:

* which backend a bind (engine, connection or dialect) talks to — ``is_postgres`` / ``is_sqlite``,
  and ``check_supported`` for code that has a branch per backend and nothing for a third one;
* how a timestamp is stored — ``stores_naive_utc`` (SQLite: naive UTC text that sorts correctly;
  PostgreSQL: ``timestamptz``);
* which INSERT has ``ON CONFLICT`` — ``insert``;
* how a value reaches the driver when we bypass SQLAlchemy's per-row parameter handling —
  ``bind_processor`` and ``paramstyle_marks`` (``?`` or ``%s``, with a ``::json`` cast on PostgreSQL);
* what a timestamp read back looks like — ``as_utc`` turns either backend's value (SQLite's text or
  naive datetime, PostgreSQL's aware one) into an aware UTC datetime;
* how a timestamp is read as integer microseconds since the epoch in bulk — ``epoch_micros`` (the SQL
  expression) with ``epoch_micros_reader`` (what turns each value it gives into an int), and as the stored
  value itself, to be written back unchanged — ``stored_timestamp``;
* how a large join's rows come back — ``streams_ordered_join`` (in an index's order without a sort) and
  ``holds_whole_result`` (the client holds a result unless it asks for a server-side cursor);
* whether a join can be made a per-row index probe whatever the planner estimates — ``has_lateral``;
* whether this process must serialise its own writes — ``needs_process_write_lock`` (SQLite has a
  single writer; PostgreSQL locks rows).

SQL building blocks whose text differs by backend (``store/sql/read/sql.py``, ``store/sql/rollup/build.py``,
``store/sql/write/sql.py``) branch on ``is_postgres``; what each branch does stays next to the query it
belongs to. Engine options per backend live in ``store/sql/schema/engine.py``, which also decides from a URL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from agenttracer.model import UNIX_EPOCH

POSTGRESQL = "postgresql"
SQLITE = "sqlite"
SUPPORTED = (SQLITE, POSTGRESQL)

Bind = sa.Engine | sa.Connection | sa.Dialect
Processor = Callable[[Any], Any]


def dialect_of(bind: Bind) -> sa.Dialect:
    return bind if isinstance(bind, sa.Dialect) else bind.dialect


def is_postgres(bind: Bind) -> bool:
    return dialect_of(bind).name == POSTGRESQL


def is_sqlite(bind: Bind) -> bool:
    return dialect_of(bind).name == SQLITE


def check_supported(bind: Bind) -> str:
    """The backend's name; ValueError for a database AgentTracer does not support."""
    name = dialect_of(bind).name
    if name not in SUPPORTED:
        raise ValueError(f"unsupported dialect {name}: use SQLite or PostgreSQL")
    return name


def stores_naive_utc(dialect: sa.Dialect) -> bool:
    """SQLite keeps timestamps as naive UTC text; PostgreSQL as ``timestamptz``."""
    return dialect.name == SQLITE


def needs_process_write_lock(bind: Bind) -> bool:
    """SQLite has one writer per database: this process's writers take turns instead of contending."""
    return is_sqlite(bind)


def insert(bind: Bind, table: sa.Table) -> Any:
    """An INSERT for ``table`` that offers ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if check_supported(bind) == POSTGRESQL:
        return postgresql.insert(table)
    return sqlite.insert(table)


def identity(value: Any) -> Any:
    """What ``bind_processor`` / ``result_processor`` return when SQLAlchemy does nothing to a value."""
    return value


def bind_processor(column: sa.Column[Any] | sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Processor:
    """What SQLAlchemy would do to a value of this column (or type) before the driver sees it; the
    identity when it does nothing. For code that sends parameters to the driver directly."""
    type_ = column.type if isinstance(column, sa.Column) else column
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else identity


def result_processor(column: sa.Column[Any], dialect: sa.Dialect) -> Processor:
    """What SQLAlchemy would do to a driver's value of this column when reading a row; the identity when
    it does nothing."""
    process = column.type.dialect_impl(dialect).result_processor(dialect, None)
    return process if process is not None else identity


def paramstyle_marks(dialect: sa.Dialect, columns: Sequence[sa.Column[Any]]) -> list[str]:
    """The driver's placeholder per column: ``?`` (sqlite3) or ``%s`` (psycopg, JSON cast explicitly)."""
    if is_sqlite(dialect):
        return ["?"] * len(columns)
    return ["%s::json" if isinstance(c.type, sa.JSON) else "%s" for c in columns]


def as_utc(value: Any) -> datetime:
    """A timestamp value read from either database (e.g. a time bucket) as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"unexpected timestamp value {value!r}")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def epoch_micros(bind: Bind, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A timestamp column as bulk readers take it: PostgreSQL gives integer microseconds since the epoch
    (exact: ``extract`` returns a numeric); SQLite gives its stored text as it is, for
    ``epoch_micros_reader`` to convert (SQLite's date functions cost several times more per value)."""
    if is_postgres(bind):
        return sa.cast(sa.extract("epoch", column) * 1_000_000, sa.BigInteger)
    return sa.type_coerce(column, sa.String)


_MICROSECOND = timedelta(microseconds=1)


def _sqlite_micros(text: str) -> int:
    moment = datetime.fromisoformat(text)
    # The writer stores naive UTC; rows written by other tools (or by hand) may carry an offset.
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return (moment - UNIX_EPOCH) // _MICROSECOND


def epoch_micros_reader(bind: Bind) -> Callable[[Any], int]:
    """What turns a value of an ``epoch_micros`` column into integer microseconds since the epoch."""
    return identity if is_postgres(bind) else _sqlite_micros


def stored_timestamp(bind: Bind, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A timestamp column read as the driver's value of what is stored, so that writing it back through the
    driver stores exactly the same value (SQLite's text, compared as text; PostgreSQL's timestamptz)."""
    if is_postgres(bind):
        return sa.type_coerce(column, sa.DateTime(timezone=True))
    return sa.type_coerce(column, sa.String)


def streams_ordered_join(bind: Bind) -> bool:
    """PostgreSQL gives a join's rows in an index's order (the runs' (started_at, run_id)) without sorting;
    SQLite sorts such a join in a temporary B-tree, which cost more than grouping the rows in memory."""
    return is_postgres(bind)


def holds_whole_result(bind: Bind) -> bool:
    """PostgreSQL's client receives a whole result at once unless it reads through a server-side cursor;
    SQLite's cursor steps through the result as it is read."""
    return is_postgres(bind)


def has_lateral(bind: Bind) -> bool:
    """PostgreSQL has LATERAL, a join it always runs as a nested loop with the outer row's values (an index
    probe per row); SQLite has not, and its planner probes an index from the filtered outer table anyway."""
    return is_postgres(bind)
