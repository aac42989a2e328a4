"""Dirty marks: how a write tells the rollup refreshers (``store/rollup_refresh.py``, ``store/rollup_live.py``)
which time buckets changed.

The writer (and retention) call these inside their own transaction, so a mark commits or rolls back
with the data it describes. Each call is one INSERT of the touched buckets into ``rollup_dirty``. A mark
holds the start of the finest rollup bucket (MARK_SECONDS, the live refresher's 10 s) that a changed run
starts in; the hourly refresher and readers floor marks to the hour (``rollup_dirty.hour`` keeps its name
from when marks were hours: an hour-floored mark from then is the mark of that hour's first bucket, and
the hours concerned are before ``rolled_until``, which only the hourly refresher reads).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from agenttracer.store.run_state import RunState, current_start
from agenttracer.store.tables import rollup_dirty

MARK_SECONDS = 10


def floor_hour(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def floor_seconds(ts: datetime, seconds: int) -> datetime:
    """``ts`` (aware) floored to a multiple of ``seconds`` (a divisor of 3600) in UTC."""
    ts = ts.astimezone(timezone.utc)
    second = ts.minute * 60 + ts.second
    second -= second % seconds
    return ts.replace(minute=second // 60, second=second % 60, microsecond=0)


_HOUR_TYPE = rollup_dirty.c.hour.type
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def merge_intervals(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted, with touching or overlapping [from, to) intervals joined."""
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(intervals):
        if out and out[-1][1] >= a:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def mark_dirty(conn: sa.Connection, hours: Iterable[datetime]) -> None:
    """Record, in the caller's transaction, that these hours' raw data changed (one INSERT).

    Straight to the driver with a fixed SQL text (an array on PostgreSQL): building a multi-row
    SQLAlchemy insert per batch cost ~4 µs per ingested step, this ~0.3 µs.
    """
    # Bucket numbers since the epoch dedupe cheaply; only the distinct ones become datetimes.
    numbers = sorted({int(h.timestamp()) // MARK_SECONDS for h in hours})
    if not numbers:
        return
    distinct = [_EPOCH + timedelta(seconds=n * MARK_SECONDS) for n in numbers]
    dialect = conn.dialect
    if dialect.name == "postgresql":
        conn.exec_driver_sql("INSERT INTO rollup_dirty (hour) SELECT unnest(%(h)s::timestamptz[])", {"h": distinct})
        return
    convert = _HOUR_TYPE.dialect_impl(dialect).bind_processor(dialect)
    params = [(convert(h) if convert else h,) for h in distinct]
    conn.exec_driver_sql("INSERT INTO rollup_dirty (hour) VALUES (?)", params)


def mark_runs_dirty(conn: sa.Connection, states: Iterable[RunState]) -> None:
    """The writer's one call, before it updates the runs: mark the hours of every run the batch changes.

    Both the stored start and the start the run will have (a placeholder's start moves earlier when
    an earlier event arrives), so the run's old hour loses it and its new hour gains it.
    """
    hours: list[datetime] = []
    for state in states:
        old = state.row["started_at"]
        new = current_start(state) or state.fallback_start
        if state.dirty or state.new_steps or new != old:
            if old is not None:
                hours.append(old)
            if new is not None and new != old:
                hours.append(new)
    mark_dirty(conn, hours)
