"""Which parts of a time window the rollups can answer, and which must be read from the raw tables.

``plan`` splits [start, end) into *clean* whole hours — before ``rollup_state.rolled_until`` and not
marked dirty — to be read from the hourly rollup rows (or the daily ones, for whole clean days when the
timeline is daily), and the raw rest: the partial hours at the window's edges, dirty hours, and the
hours not rolled up yet (the live hour and the settle delay). Optionally, a partial edge hour whose whole
hour is clean is planned as that hour's rollup minus the raw rest of the hour outside the window, when
that rest is the shorter side. ``raw_condition`` turns the raw intervals into a condition on runs.

Used by stats, ``/v1/agents`` and compare's run counts (``store/analytics_rollup.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from agenttracer.store.rollup_marks import floor_hour
from agenttracer.store.rollup_refresh import dirty_hours, read_state
from agenttracer.store.tables import runs

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

Span = tuple[str, datetime, datetime]


def _ceil_hour(ts: datetime) -> datetime:
    floor = floor_hour(ts)
    return floor if floor == ts else floor + HOUR


class Window:
    """Which parts of [start, end) come from rollup rows (``spans``) and which from raw (``raw``).

    ``edges`` are partial edge hours read as their whole hour's rollup (in ``spans``) minus the raw rest of
    the hour: (hour start, the rest of the hour outside the window).
    """

    def __init__(self, spans: list[Span], raw: list[tuple[datetime | None, datetime | None]],
                 edges: list[tuple[datetime, tuple[datetime, datetime]]]) -> None:
        self.spans = spans
        self.raw = raw
        self.edges = edges


def plan(
    conn: sa.Connection, start: datetime, end: datetime | None, unit: str, *, open_start: bool,
    edges: bool = False,
) -> Window | None:
    """Split the window; None when no whole clean hour lies in it (the caller stays exact).

    With ``edges`` (only for callers that subtract ``Window.edges``' rests, as ``collect`` does), a partial
    hour at either edge whose whole hour is clean is read as that hour's rollup minus the rest of the hour
    when the rest is the shorter side (fewer raw rows to read, on average half).
    """
    rolled = read_state(conn)
    if rolled is None:
        return None
    lo = _ceil_hour(start)
    hi = rolled if end is None else min(floor_hour(end), rolled)
    if lo >= hi:
        return None
    dirty = set(dirty_hours(conn, lo - HOUR, hi + HOUR))
    clean: list[datetime] = []
    h = lo
    while h < hi:
        if h not in dirty:
            clean.append(h)
        h += HOUR
    if not clean:
        return None
    complements: list[tuple[datetime, tuple[datetime, datetime]]] = []
    if edges and not open_start and start < lo:
        first = lo - HOUR
        if first not in dirty and start - first < lo - start:
            complements.append((first, (first, start)))
    if (edges and end is not None and hi < end < hi + HOUR and hi + HOUR <= rolled and hi not in dirty
            and hi + HOUR - end < end - hi):
        complements.append((hi, (end, hi + HOUR)))
    spans: list[Span] = []
    hourly: list[datetime] = clean
    if unit == "day":
        clean_set = set(clean)
        days: list[datetime] = []
        hourly = []
        for hour in clean:
            day = hour.replace(hour=0)
            if day in days:
                continue
            if day >= lo and day + DAY <= hi and all(day + i * HOUR in clean_set for i in range(24)):
                days.append(day)
            else:
                hourly.append(hour)
        spans += [("day", a, b) for a, b in _merge(days, DAY)]
    spans += [("hour", a, b) for a, b in _merge(sorted([*hourly, *(hour for hour, _ in complements)]), HOUR)]
    # The raw parts: before the first clean hour, the gaps (dirty hours), after the last one; an edge
    # hour read whole covers its part of the window.
    raw: list[tuple[datetime | None, datetime | None]] = []
    covered = _merge(sorted([*clean, *(hour for hour, _ in complements)]), HOUR)
    cursor: datetime | None = None if open_start else start
    for a, b in covered:
        if cursor is None or cursor < a:
            raw.append((cursor, a))
        cursor = b
    if end is None or (cursor is not None and cursor < end):
        raw.append((cursor, end))
    return Window(spans, raw, complements)


def _merge(starts: list[datetime], step: timedelta) -> list[tuple[datetime, datetime]]:
    """Consecutive buckets of length ``step`` (sorted starts) merged into [from, to) intervals."""
    out: list[tuple[datetime, datetime]] = []
    for s in starts:
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], s + step)
        else:
            out.append((s, s + step))
    return out


def raw_condition(intervals: list[tuple[datetime | None, datetime | None]]) -> sa.ColumnElement[bool]:
    parts: list[sa.ColumnElement[bool]] = []
    for a, b in intervals:
        conds = []
        if a is not None:
            conds.append(runs.c.started_at >= a)
        if b is not None:
            conds.append(runs.c.started_at < b)
        if a is None:
            # An open start also takes the runs whose start is not known.
            parts.append(sa.or_(sa.and_(*conds), runs.c.started_at.is_(None)) if conds else sa.true())
        else:
            parts.append(sa.and_(*conds))
    return sa.or_(*parts) if parts else sa.false()
