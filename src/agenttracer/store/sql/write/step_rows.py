"""Rows of the steps table as the database driver takes them, prepared before the writer's lock.

The writer inserts steps through the DBAPI cursor (``executemany`` on SQLite, ``COPY`` on
PostgreSQL) because SQLAlchemy's per-row parameter handling cost more than the insert itself. The
stored values must still be exactly what SQLAlchemy's column types store: on SQLite, timestamps as
its naive-UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` text; metadata as the engine's JSON serializer writes it.
``StepRows`` does that with a cheap formatting for the common case (an aware datetime already in
``timezone.utc``, which is what validation produces), by slicing the request's own text when the
server's fast path vouches for its form, and with the column type's own bind processor for anything
else; ``tests/store/test_writer_sql.py`` holds them to byte identity.

Preparing rows is pure computation, so the writer does it before it takes SQLite's single-writer
lock: the critical section is then only SQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from agenttracer.store.sql.dialect import bind_processor, is_sqlite, stores_naive_utc
from agenttracer.store.sql.schema.tables import steps

# Every column of steps in table order: the layout of the row tuples StepRows builds for the driver.
STEP_ROW_COLUMNS: tuple[str, ...] = tuple(c.name for c in steps.columns)

_UTC = timezone.utc


class StepRows:
    """Turns a step's column values into a tuple in ``STEP_ROW_COLUMNS`` order for ``dialect``'s driver."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.sqlite = is_sqlite(dialect)
        # SQLite: SQLAlchemy's text form (cheaply, for an aware UTC datetime). PostgreSQL: the aware
        # datetime itself (the driver sends timestamptz).
        self.timestamp: Callable[[datetime], Any] = timestamp_binder(steps.c.started_at, dialect)
        # SQLite: the text of the engine's JSON serializer, which SQLAlchemy's JSON bind processor
        # calls. PostgreSQL: the object itself; psycopg's jsonb dumper, which SQLAlchemy points at the
        # same serializer on every connection, encodes it in the binary COPY.
        serializer: Callable[[Any], Any] = getattr(dialect, "_json_serializer", None) or json.dumps
        self._json = serializer if self.sqlite else _identity

    def row(
        self, values: Mapping[str, Any], wire_started: str | None = None, wire_ended: str | None = None
    ) -> tuple[Any, ...]:
        """The row of one step; ``wire_*`` as in ``run_state.Incoming`` (SQLite only uses them)."""
        latency = values["latency_ms"]
        if wire_started is not None and wire_ended is not None and self.sqlite:
            started, ended = sqlite_text_from_wire(wire_started), sqlite_text_from_wire(wire_ended)
        else:
            started, ended = self.timestamp(values["started_at"]), self.timestamp(values["ended_at"])
        return (
            values["run_id"],
            values["seq"],
            values["step_type"],
            values["name"],
            values["status"],
            started,
            ended,
            latency if type(latency) is float else float(latency),
            values.get("attempt", 1),
            values.get("retry_of_seq"),
            values.get("parent_seq"),
            values.get("error_class"),
            values.get("failure_code"),
            self._json(values.get("meta") or {}),
            values.get("meta_removed", 0),
            values.get("span_id"),
            values.get("parent_span_id"),
        )


def _sqlite_utc_text(value: datetime) -> str:
    # "YYYY-MM-DD HH:MM:SS[.ffffff]+00:00" -> SQLAlchemy's "%04d-%02d-%02d %02d:%02d:%02d.%06d".
    text = value.isoformat(" ")
    return text[:-6] if value.microsecond else text[:-6] + ".000000"


def sqlite_text_from_wire(text: str) -> str:
    """SQLAlchemy's SQLite text of a UTC timestamp given in the SDK's form
    ``YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+00:00)`` (the caller has checked it: the server's fast path),
    by slicing: a fifth of the cost of parsing it and formatting the datetime."""
    end = -1 if text[-1] == "Z" else -6
    fraction = text[19:end]
    return f"{text[:10]} {text[11:19]}{(fraction + '00000')[:7] if fraction else '.000000'}"


def timestamp_binder(column: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any]:
    """The bind processor of a ``UTCDateTime`` column, with ``StepRows``' cheap formatting of an aware
    datetime in ``timezone.utc`` on SQLite (the column type's own processor for anything else)."""
    process = bind_processor(column, dialect)
    if not stores_naive_utc(dialect):
        return process

    def bind(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is _UTC:
            return _sqlite_utc_text(value)
        return process(value)

    return bind


def _identity(value: Any) -> Any:
    return value


# The row layout above is written out for speed; this keeps it honest if the table changes.
assert STEP_ROW_COLUMNS == (
    "run_id",
    "seq",
    "step_type",
    "name",
    "status",
    "started_at",
    "ended_at",
    "latency_ms",
    "attempt",
    "retry_of_seq",
    "parent_seq",
    "error_class",
    "failure_code",
    "meta",
    "meta_removed",
    "span_id",
    "parent_span_id",
), STEP_ROW_COLUMNS
