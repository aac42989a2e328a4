"""The live region's rollups: 10-second and minute rows between ``rolled_until`` and now, and the background
worker that runs both refreshers in the ingest process.

The hourly refresher (``store/sql/rollup/refresh.py``) rolls an hour up once it has closed and settled; until
then a stats window's newest hour would be read from the raw tables, and under steady ingest that hour holds
up to an hour of steps. The live refresher (``refresh_live``) keeps that region in finer rows, with the same
dirty-mark protocol (``store/sql/rollup/marks.py``: marks are 10-second buckets):

* ``10s`` rows for every 10-second bucket in [rolled_until, live_until), recomputed from the raw tables when
  new or marked dirty;
* ``min`` rows for every whole minute before live_until: the sums of its six 10-second buckets' rows,
  rewritten whenever one of them is (so a reader takes an hour as ~60 minute rows, not 360).

``live_until`` (the ``rollup_state`` row LIVE_STATE_ID) is the start of the current 10 seconds at the last
pass. Readers (``store/sql/rollup/window.py``) take clean minutes from minute rows, the other clean 10-second
buckets from 10-second rows, and read raw only dirty 10-second buckets (runs still in flight) and
[live_until, now): with a pass every RollupWorker live interval, a few seconds of steps instead of an hour.

A pass is one transaction with the hourly pass's discipline (``refresh.refresher_transaction``: SQLite's
write lock from the first statement, PostgreSQL REPEATABLE READ): recompute, then delete the marks the
recompute saw. When the hourly refresher rolls an hour up it deletes that hour's finer rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from agenttracer.store.periodic import PeriodicWorker
from agenttracer.store.records import LiveResult, RefreshResult
from agenttracer.store.sql.expressions import time_bucket
from agenttracer.store.sql.rollup.aggregates import Aggregates
from agenttracer.store.sql.rollup.attribution import attribute
from agenttracer.store.sql.rollup.build import MINUTE_GRAIN, TEN_S_GRAIN, aggregate_raw, rollup_keys
from agenttracer.store.sql.rollup.marks import (
    LIVE_STATE_ID,
    MARK_SECONDS,
    MINUTE,
    TEN_S,
    dirty_marks,
    floor_seconds,
    merge_intervals,
    read_live,
    read_state,
)
from agenttracer.store.sql.rollup.refresh import (
    DEFAULT_INTERVAL_S,
    DEFAULT_SETTLE,
    ROLLUP_TABLES,
    merge_buckets,
    refresh,
    refresher_connection,
    refresher_transaction,
    write_levels,
)
from agenttracer.store.sql.schema.tables import rollup_dirty, rollup_state, runs

log = logging.getLogger("agenttracer.rollup")

# Further behind than this, the hourly refresher is catching up (after downtime): the live pass waits for it.
MAX_LIVE_SPAN = timedelta(hours=3)
# New time one transaction rolls up at most: a backlog (a restart, the first pass) is taken in steps that
# hold SQLite's write lock for a fraction of a second each, and readers gain from each step at once.
STEP_SPAN = timedelta(minutes=1)
DEFAULT_LIVE_INTERVAL_S = 2.0

Interval = tuple[datetime, datetime]


def _set_live(conn: sa.Connection, value: datetime) -> None:
    state = rollup_state
    done = conn.execute(sa.update(state).where(state.c.id == LIVE_STATE_ID).values(rolled_until=value))
    if not done.rowcount:
        conn.execute(sa.insert(state).values(id=LIVE_STATE_ID, rolled_until=value))


def refresh_live(engine: sa.Engine, *, now: datetime | None = None,
                 should_stop: Callable[[], bool] = lambda: False) -> LiveResult:
    """One live pass: recompute the new and the dirty 10-second buckets since rolled_until, and their minutes
    (in steps of at most STEP_SPAN of new time, one transaction each)."""
    started = time.perf_counter()
    target = floor_seconds(now or datetime.now(timezone.utc), MARK_SECONDS)
    buckets = minutes = 0
    live: datetime | None = None
    with refresher_connection(engine) as conn:
        if conn is None:
            return LiveResult(0, 0, None, time.perf_counter() - started, skipped=True)
        while True:
            with refresher_transaction(engine, conn):
                step = _step(conn, target)
            if step is None:
                break
            buckets, minutes, live = buckets + step[0], minutes + step[1], step[2]
            if live >= target or should_stop():
                break
        if live is None:
            with conn.begin():
                live = read_live(conn)
    return LiveResult(buckets, minutes, live, time.perf_counter() - started)


def _step(conn: sa.Connection, target: datetime) -> tuple[int, int, datetime] | None:
    """Recompute the dirty buckets and up to STEP_SPAN of new ones; (buckets, minutes, new live_until) or None."""
    rolled = read_state(conn)
    live = read_live(conn)
    if rolled is None or target <= rolled or target - rolled > MAX_LIVE_SPAN:
        return None
    start = live if live is not None and live > rolled else rolled
    until = min(target, start + STEP_SPAN)
    fresh = [(start, until)] if start < until else []
    intervals = merge_intervals([*((m, m + TEN_S) for m in dirty_marks(conn, rolled, start)), *fresh])
    if not intervals:
        return None
    buckets = _recompute(conn, intervals)
    minutes = sorted({floor_seconds(a, 60) + MINUTE * i for a, b in intervals
                      for i in range(int((b - floor_seconds(a, 60)) / MINUTE) + 1)})
    closed = [m for m in minutes if m + MINUTE <= until]
    merge_buckets(conn, MINUTE_GRAIN, closed, MINUTE, TEN_S_GRAIN)
    conn.execute(rollup_dirty.delete().where(rollup_dirty.c.hour >= rolled, rollup_dirty.c.hour < until))
    _set_live(conn, until)
    return buckets, len(closed), until


def _recompute(conn: sa.Connection, intervals: list[Interval]) -> int:
    """Replace the 10-second rows of ``intervals`` with fresh aggregates of the raw tables; return how many
    non-empty buckets were written."""
    for table in ROLLUP_TABLES:
        conn.execute(table.delete().where(table.c.grain == TEN_S_GRAIN, sa.or_(*[
            sa.and_(table.c.bucket_start >= a, table.c.bucket_start < b) for a, b in intervals])))
    bucket = time_bucket(conn, runs.c.started_at, "10s")
    keys = [bucket, *rollup_keys()]
    flags = (True, False, False, False, False)
    in_intervals = sa.or_(*[sa.and_(runs.c.started_at >= a, runs.c.started_at < b) for a, b in intervals])
    attribute(conn, [in_intervals])  # runs that finished (or changed) since: their self time, stored once
    agg = aggregate_raw(conn, [in_intervals], keys, keys, time_keys=flags, step_time_keys=flags)
    per_bucket: dict[datetime, Aggregates] = {}

    def part(key: tuple[Any, ...]) -> Aggregates:
        found = per_bucket.get(key[0])
        if found is None:
            found = per_bucket[key[0]] = Aggregates()
        return found

    for key, runs_agg in agg.runs.items():
        part(key).runs[key[1:]] = runs_agg
    for key, n in agg.failures.items():
        part(key).failures[key[1:]] = n
    for key, step in agg.steps.items():
        part(key).steps[key[1:]] = step
    for start, detail in per_bucket.items():
        write_levels(conn, TEN_S_GRAIN, start, detail)
    return len(per_bucket)


class RollupWorker(PeriodicWorker[RefreshResult | LiveResult]):
    """A daemon thread running the hourly refresher every ``interval_s`` seconds and the live one every
    ``live_interval_s`` (0: never) — the ingest process's. ``stop()`` interrupts the wait and the hourly pass
    (after the hour in flight commits)."""

    thread_name = "agenttracer-rollup"
    log = log

    def __init__(self, engine: sa.Engine, *, interval_s: float = DEFAULT_INTERVAL_S,
                 settle: timedelta = DEFAULT_SETTLE, live_interval_s: float = DEFAULT_LIVE_INTERVAL_S,
                 first_delay_s: float = 1.0) -> None:
        tick = min(interval_s, live_interval_s) if live_interval_s > 0 else interval_s
        super().__init__(interval_s=tick, first_delay_s=first_delay_s)
        self.engine = engine
        self.settle = settle
        self.hourly_interval_s = interval_s
        self.live_interval_s = live_interval_s
        self._next_hourly = 0.0
        # Wall-clock time (time.time()) the hourly refresher last ended a pass with nothing left to do, or
        # another process's refresher held the lock; the server reports now minus this as its lag.
        self.caught_up_at = time.time()

    def _pass(self) -> RefreshResult | LiveResult:
        result: RefreshResult | LiveResult | None = None
        if time.monotonic() >= self._next_hourly:
            hourly = refresh(self.engine, settle=self.settle, should_stop=self._stop.is_set)
            self._next_hourly = time.monotonic() + self.hourly_interval_s
            if hourly.skipped or (hourly.dirty_left == 0 and not self._stop.is_set()):
                self.caught_up_at = time.time()
            if hourly.hours:
                log.info("rollup: recomputed %d hours and %d days in %.1f s; rolled up until %s",
                         hourly.hours, hourly.days, hourly.seconds,
                         hourly.rolled_until.isoformat() if hourly.rolled_until else "-")
            result = hourly
        if self.live_interval_s > 0 and not self._stop.is_set():
            result = refresh_live(self.engine, should_stop=self._stop.is_set)
        assert result is not None
        return result


def start_rollup(engine: sa.Engine, interval_s: float, settle_s: float,
                 live_interval_s: float = DEFAULT_LIVE_INTERVAL_S) -> RollupWorker | None:
    """Start the background refreshers unless ``interval_s`` is 0 (``settings.rollup_interval_seconds``;
    ``settings.rollup_live_interval_seconds`` for the live one, 0 turns only that one off)."""
    if interval_s <= 0:
        return None
    return RollupWorker(engine, interval_s=interval_s, settle=timedelta(seconds=settle_s),
                        live_interval_s=live_interval_s).start()
