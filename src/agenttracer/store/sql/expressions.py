"""SQL expressions the rollups and the reads both build on (below both in the layering: schema <
rollup < read/write), each written for SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from agenttracer.store.sql.dialect import is_postgres


def count_if(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    """How many rows of the group satisfy ``cond`` (0, not NULL, for an empty group)."""
    return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)


def time_bucket(conn: sa.Connection, column: sa.ColumnElement[Any], unit: str) -> sa.ColumnElement[Any]:
    """An expression truncating a UTC timestamp column to the start of its hour or day (or its 10 seconds)."""
    if unit == "10s":
        if is_postgres(conn):
            return sa.func.date_bin(sa.text("interval '10 seconds'"), column,
                                    sa.text("timestamptz '2000-01-01 00:00:00+00'"))
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' text: keep the minute, floor the seconds to a multiple of 10.
        return sa.func.substr(column, 1, 18, type_=sa.String()) + "0"
    if unit not in ("hour", "day"):
        raise ValueError(f"unknown bucket unit {unit!r}")
    if is_postgres(conn):
        return sa.func.date_trunc(unit, sa.func.timezone("UTC", column))
    fmt = "%Y-%m-%d %H:00:00" if unit == "hour" else "%Y-%m-%d 00:00:00"
    return sa.func.strftime(fmt, column)
