"""Which parts of a time window the rollups can answer, and which must be read from the raw tables.

After rolled_until, the live region's minute and 10-second rows (``store/sql/rollup/live.py``) answer the
clean buckets up to ``live_until``; what is left raw is the dirty 10-second buckets (runs in flight) and
the seconds since the last live pass.

``plan`` splits [start, end) into *clean* whole hours — before ``rollup_state.rolled_until`` and not
marked dirty — to be read from the hourly rollup rows (or the daily ones, for whole clean days when the
timeline is daily), and the raw rest: the partial hours at the window's edges, dirty hours, and the
hours not rolled up yet (the live hour and the settle delay). Optionally, a partial edge hour whose whole
hour is clean is planned as that hour's rollup minus the raw rest of the hour outside the window, when
that rest is the shorter side. ``raw_condition`` turns the raw intervals into a condition on runs.

Planning works on intervals, never on a list of the window's hours: the window is clamped to the hour of
the earliest run (one index lookup) and its clean part is [start, rolled_until) cut at the dirty hours,
so its cost depends on the data (how many dirty hours there are), not on the window's length — a window
from 1970, or from year 1, plans as cheaply as one starting at the first run.

Used by stats, ``/v1/agents`` and compare's run counts (``store/sql/read/stats_rollup.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from agenttracer.store.sql.rollup.build import MINUTE_GRAIN, TEN_S_GRAIN
from agenttracer.store.sql.rollup.marks import (
    MARK_SECONDS,
    MINUTE,
    TEN_S,
    dirty_hours,
    dirty_marks,
    floor_hour,
    floor_seconds,
    merge_intervals,
    read_live,
    read_state,
)
from agenttracer.store.sql.schema.tables import runs
from agenttracer.store.stats_assembly import DAY, HOUR

_MIN = datetime.min.replace(tzinfo=timezone.utc)

Span = tuple[str, datetime, datetime]


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


def _data_start(conn: sa.Connection) -> datetime | None:
    """The earliest known run start (one index lookup), or None when no run has one."""
    value = conn.execute(sa.select(sa.func.min(runs.c.started_at))).scalar()
    return value if isinstance(value, datetime) else None


def _ceil(ts: datetime, floor: datetime, step: timedelta) -> datetime:
    return floor if floor == ts else floor + step


Interval = tuple[datetime, datetime]


def _clean_intervals(lo: datetime, hi: datetime, dirty: list[datetime], step: timedelta) -> list[Interval]:
    """[lo, hi) without the buckets (of length ``step``) that start at the sorted ``dirty`` times."""
    out: list[tuple[datetime, datetime]] = []
    cursor = lo
    for bucket in dirty:
        if bucket >= hi:
            break
        if bucket > cursor:
            out.append((cursor, bucket))
        cursor = max(cursor, bucket + step)
    if cursor < hi:
        out.append((cursor, hi))
    return out


def _split_days(intervals: list[tuple[datetime, datetime]]) -> tuple[list[tuple[datetime, datetime]],
                                                                      list[tuple[datetime, datetime]]]:
    """Clean hour intervals as (whole days, the hours around them)."""
    days: list[tuple[datetime, datetime]] = []
    hours: list[tuple[datetime, datetime]] = []
    for a, b in intervals:
        first_day = _ceil(a, a.replace(hour=0), DAY)
        last_day = b.replace(hour=0)
        if first_day < last_day:
            days.append((first_day, last_day))
            hours += [(x, y) for x, y in ((a, first_day), (last_day, b)) if x < y]
        else:
            hours.append((a, b))
    return days, hours


def plan(
    conn: sa.Connection, start: datetime, end: datetime | None, unit: str, *, open_start: bool,
    edges: bool = False,
) -> Window | None:
    """Split the window; None when no whole clean hour lies in it (the caller stays exact).

    With ``edges`` (only for callers that subtract ``Window.edges``' rests, as ``collect`` does), a partial
    hour at either edge whose whole hour is clean is read as that hour's rollup minus the rest of the hour
    when the rest is the shorter side (fewer raw rows to read, on average half).

    The work is bounded by the data, never by the window's length: the window is clamped to the hour of
    the earliest run, and the clean parts are intervals between the dirty hours (each a few rows), so a
    window from 1970 costs what one from the first run costs.
    """
    rolled = read_state(conn)
    if rolled is None:
        return None
    first_run = _data_start(conn)
    if first_run is None:
        return None
    clean: list[Interval] = []
    complements: list[tuple[datetime, tuple[datetime, datetime]]] = []
    if start < rolled:
        head = floor_hour(start)
        # Before the first run's hour there is nothing: neither rollup rows nor raw runs to read.
        lo = max(_ceil(start, head, HOUR), floor_hour(first_run))
        hi = rolled if end is None else min(floor_hour(end), rolled)
        if lo < hi:
            dirty_list = dirty_hours(conn, lo - HOUR if lo - _MIN >= HOUR else lo, hi + HOUR)
            dirty = set(dirty_list)
            clean = _clean_intervals(lo, hi, dirty_list, HOUR)
        if clean and edges:
            if (not open_start and head < start and head + HOUR == lo and head not in dirty
                    and start - head < lo - start):
                complements.append((head, (head, start)))
            if (end is not None and hi < end < hi + HOUR and hi + HOUR <= rolled and hi not in dirty
                    and hi + HOUR - end < end - hi):
                complements.append((hi, (end, hi + HOUR)))
    live = _live_spans(conn, start, end, rolled, first_run)
    if not clean and not live:
        return None
    spans: list[Span] = []
    hourly = clean
    if unit == "day":
        days, hourly = _split_days(clean)
        spans += [("day", a, b) for a, b in days]
    edge_hours = [(hour, hour + HOUR) for hour, _ in complements]
    spans += [("hour", a, b) for a, b in merge_intervals([*hourly, *edge_hours])]
    spans += live
    # The raw parts: before the first clean hour, the gaps (dirty hours), after the last one; an edge
    # hour read whole covers its part of the window.
    raw: list[tuple[datetime | None, datetime | None]] = []
    cursor: datetime | None = None if open_start else start
    for a, b in merge_intervals([*clean, *edge_hours, *((a, b) for _, a, b in live)]):
        if cursor is None or cursor < a:
            raw.append((cursor, a))
        cursor = b
    if end is None or (cursor is not None and cursor < end):
        raw.append((cursor, end))
    return Window(spans, raw, complements)


def _live_spans(conn: sa.Connection, start: datetime, end: datetime | None, rolled: datetime,
                first_run: datetime) -> list[Span]:
    """The window's clean part of the live region [rolled_until, live_until) (``store/sql/rollup/live.py``):
    whole clean minutes from minute rows, the other clean 10-second buckets from 10-second rows."""
    live_until = read_live(conn)
    if live_until is None or live_until <= rolled or start >= live_until:
        return []
    lo = max(rolled, _ceil(start, floor_seconds(start, MARK_SECONDS), TEN_S),
             floor_seconds(first_run, MARK_SECONDS))
    hi = live_until if end is None else min(live_until, floor_seconds(end, MARK_SECONDS))
    if lo >= hi:
        return []
    marks = dirty_marks(conn, lo, hi)
    clean_ten = _clean_intervals(lo, hi, marks, TEN_S)
    first_minute, last_minute = _ceil(lo, floor_seconds(lo, 60), MINUTE), floor_seconds(hi, 60)
    minutes: list[Interval] = []
    if first_minute < last_minute:
        dirty_minutes = sorted({floor_seconds(mark, 60) for mark in marks})
        minutes = _clean_intervals(first_minute, last_minute, dirty_minutes, MINUTE)
    return [*((MINUTE_GRAIN, a, b) for a, b in minutes),
            *((TEN_S_GRAIN, a, b) for a, b in _subtract(clean_ten, minutes))]


def _subtract(intervals: list[Interval], taken: list[Interval]) -> list[Interval]:
    """Sorted disjoint ``intervals`` without the sorted disjoint ``taken`` ones."""
    out: list[Interval] = []
    for a, b in intervals:
        for x, y in taken:
            if y <= a or x >= b:
                continue
            if x > a:
                out.append((a, x))
            a = max(a, y)
        if a < b:
            out.append((a, b))
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
