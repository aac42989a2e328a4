"""Dirty marks: how a write tells the rollup refresher (``store/rollup/refresh.py``) which hours changed.

The writer (and retention) call these inside their own transaction, so a mark commits or rolls back
with the data it describes. Each call is one INSERT of the touched hours into ``rollup_dirty``.
The read helpers (``read_state``, ``dirty_hours``) are what the refresher and the stats window planner
read of that bookkeeping; they live here so readers need not import the refresher (which writes).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from agenttracer.store.schema.tables import rollup_dirty, rollup_state


def floor_hour(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


_HOUR_TYPE = rollup_dirty.c.hour.type
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def mark_dirty(conn: sa.Connection, hours: Iterable[datetime]) -> None:
    """Record, in the caller's transaction, that these hours' raw data changed (one INSERT).

    Straight to the driver with a fixed SQL text (an array on PostgreSQL): building a multi-row
    SQLAlchemy insert per batch cost ~4 µs per ingested step, this ~0.3 µs.
    """
    # Hour numbers since the epoch dedupe cheaply; only the distinct ones become datetimes.
    numbers = sorted({int(h.timestamp()) // 3600 for h in hours})
    if not numbers:
        return
    distinct = [_EPOCH + timedelta(hours=n) for n in numbers]
    dialect = conn.dialect
    if dialect.name == "postgresql":
        conn.exec_driver_sql("INSERT INTO rollup_dirty (hour) SELECT unnest(%(h)s::timestamptz[])", {"h": distinct})
        return
    convert = _HOUR_TYPE.dialect_impl(dialect).bind_processor(dialect)
    params = [(convert(h) if convert else h,) for h in distinct]
    conn.exec_driver_sql("INSERT INTO rollup_dirty (hour) VALUES (?)", params)


def read_state(conn: sa.Connection) -> datetime | None:
    value = conn.execute(sa.select(rollup_state.c.rolled_until).where(rollup_state.c.id == 1)).scalar()
    return value if isinstance(value, datetime) else None


def dirty_hours(conn: sa.Connection, since: datetime | None = None, until: datetime | None = None) -> list[datetime]:
    """Distinct dirty hours in [since, until), oldest first."""
    conds = []
    if since is not None:
        conds.append(rollup_dirty.c.hour >= since)
    if until is not None:
        conds.append(rollup_dirty.c.hour < until)
    query = sa.select(rollup_dirty.c.hour).where(*conds).distinct().order_by(rollup_dirty.c.hour)
    return [floor_hour(h) for h in conn.execute(query).scalars()]
