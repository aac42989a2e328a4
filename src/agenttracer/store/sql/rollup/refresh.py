"""Keeping the rollups exact: dirty marks from every write, and the refresher that folds them in.

Bookkeeping (tables in ``store/sql/schema/tables.py``):

* ``rollup_state.rolled_until`` — every hour before it has been rolled up, *unless* it has a
  ``rollup_dirty`` row. Hours from it on (the live hour, plus the settle delay) are never rolled up.
* ``rollup_dirty`` — the writer appends one row per touched 10-second bucket in the same transaction as
  the data (``mark_runs_dirty``; an hour is dirty when any of its buckets is): the bucket of every run the
  batch changed, both the old and the new hour when a
  placeholder's start moves earlier. Retention does the same for the runs it deletes. Appending
  instead of bumping a per-hour counter means concurrent batches never wait on each other's row lock.
  (``store/sql/rollup/marks.py``.)

The refresher (``refresh``) recomputes an hour's rollup rows from the raw tables and deletes that
hour's dirty rows *in the same transaction, under the same snapshot*: PostgreSQL runs it at
REPEATABLE READ, so the DELETE removes exactly the marks whose data the recompute saw; a batch that
commits in between leaves its mark behind (the hour stays dirty and is recomputed on the next pass).
On SQLite the transaction holds the write lock from its first statement, so nothing commits in
between at all. Stats read dirty hours from the raw tables, so they are exact before and after a
refresh. Only one refresher works on a database at a time (a PostgreSQL advisory lock; SQLite's
single writer), so ingest processes scaled out can all run one.

Daily rows are the sums of a day's hourly rows, rewritten whenever one of its hours is, once the
whole day lies before ``rolled_until``; a reader uses them only for days with no dirty hour. Rolling an
hour up also deletes the live refresher's minute and 10-second rows of it (``store/sql/rollup/live.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import sqlalchemy as sa

from agenttracer.store.records import RefreshResult
from agenttracer.store.sql.dialect import bind_processor, is_postgres, paramstyle_marks
from agenttracer.store.sql.dialect import identity as unchanged
from agenttracer.store.sql.lock import write_lock
from agenttracer.store.sql.rollup.aggregates import Aggregates, RunAgg, StepAgg
from agenttracer.store.sql.rollup.attribution import attribute
from agenttracer.store.sql.rollup.build import FINE_GRAINS, LEVELS, aggregate_raw, project, rollup_keys
from agenttracer.store.sql.rollup.marks import dirty_hours, floor_day, floor_hour, read_state
from agenttracer.store.sql.schema.tables import (
    rollup_dirty,
    rollup_failures,
    rollup_runs,
    rollup_state,
    rollup_steps,
    runs,
)
from agenttracer.store.stats_assembly import DAY, HOUR

log = logging.getLogger("agenttracer.rollup")

DEFAULT_SETTLE = timedelta(minutes=2)
DEFAULT_INTERVAL_S = 60.0
ROLLUP_TABLES = (rollup_runs, rollup_failures, rollup_steps)


# --- the refresher -------------------------------------------------------------------------------


@contextmanager
def refresher_connection(engine: sa.Engine) -> Iterator[sa.Connection | None]:
    """A connection for one refresher pass, or None when another refresher is at work on this database."""
    with engine.connect() as conn:
        if not is_postgres(engine):
            yield conn
            return
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        # Session-level, per schema (tests and benchmarks keep several databases in one server).
        key = sa.func.hashtext(sa.func.current_schema() + ":agenttracer-rollup")
        with conn.begin():
            got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar()
        if not got:
            yield None
            return
        try:
            with conn.begin():
                # A bucket's queries are index probes per run whose estimated cost can pass the JIT threshold
                # (step_self_time filling during a first build has stale statistics): compiling them took
                # ~1.5 s per query on a busy 2-core box, for queries that run in tens of milliseconds.
                conn.exec_driver_sql("SET jit = off")
            yield conn
        finally:
            with conn.begin():
                conn.exec_driver_sql("RESET jit")
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))


@contextmanager
def refresher_transaction(engine: sa.Engine, conn: sa.Connection) -> Iterator[sa.Connection]:
    with write_lock(engine), conn.begin():
        # A write first: SQLite takes its write lock here (so nothing commits until we do and the busy
        # timeout applies); PostgreSQL takes the REPEATABLE READ snapshot here.
        state = rollup_state
        conn.execute(sa.update(state).where(state.c.id == 1).values(rolled_until=state.c.rolled_until))
        yield conn


# A test hook: runs after an hour is recomputed and before its dirty marks are cleared.
BeforeClear = Callable[[datetime], None]


def refresh(
    engine: sa.Engine,
    *,
    now: datetime | None = None,
    settle: timedelta = DEFAULT_SETTLE,
    rebuild: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    before_clear: BeforeClear | None = None,
    progress: Callable[[datetime], None] | None = None,
) -> RefreshResult:
    """One refresher pass: recompute dirty hours, then roll up every hour that closed ``settle`` ago.

    ``rebuild`` first forgets everything rolled up and starts again from the oldest run.
    """
    started = time.perf_counter()
    target = floor_hour((now or datetime.now(timezone.utc)) - settle)
    hours = days = 0
    with refresher_connection(engine) as conn:
        if conn is None:
            return RefreshResult(0, 0, None, 0, time.perf_counter() - started, skipped=True)
        if rebuild:
            with refresher_transaction(engine, conn):
                for table in (*ROLLUP_TABLES, rollup_dirty):
                    conn.execute(table.delete())
                conn.execute(sa.update(rollup_state).where(rollup_state.c.id == 1).values(rolled_until=None))
                conn.execute(rollup_state.delete().where(rollup_state.c.id != 1))  # the live watermarks
        with conn.begin():
            rolled = read_state(conn)
            stale = dirty_hours(conn, until=rolled) if rolled is not None else []
        for hour in stale:
            if should_stop():
                break
            with refresher_transaction(engine, conn):
                rolled = read_state(conn)
                _roll_hour(conn, hour)
                if rolled is not None and floor_day(hour) + DAY <= rolled:
                    days += merge_buckets(conn, "day", [floor_day(hour)], DAY, "hour")
                if before_clear is not None:
                    before_clear(hour)
                marks = rollup_dirty.c.hour
                conn.execute(rollup_dirty.delete().where(marks >= hour, marks < hour + HOUR))
            hours += 1
            if progress is not None:
                progress(hour)
        while not should_stop():
            with refresher_transaction(engine, conn):
                rolled = read_state(conn)
                step = _advance(conn, rolled, target, before_clear)
            if step is None:
                break
            hours += step[0]
            days += step[1]
            if progress is not None:
                progress(step[2])
        with conn.begin():
            rolled = read_state(conn)
            left = len(dirty_hours(conn, until=rolled)) if rolled is not None else 0
    return RefreshResult(hours, days, rolled, left, time.perf_counter() - started)


def _advance(
    conn: sa.Connection, rolled: datetime | None, target: datetime, before_clear: BeforeClear | None
) -> tuple[int, int, datetime] | None:
    """Roll up the next hour with runs before ``target`` (skipping empty ones) and move rolled_until past it.

    Returns (hours rolled, days merged, new rolled_until), or None when there was nothing to do.
    """
    if rolled is not None and rolled >= target:
        return None
    after = [runs.c.started_at >= rolled] if rolled is not None else []
    first = conn.execute(sa.select(sa.func.min(runs.c.started_at)).where(*after, runs.c.started_at < target)).scalar()
    rolled_hours = 0
    if first is None:
        new_until = target  # no runs left before the target: the rest is empty hours
    else:
        hour = floor_hour(first)
        _roll_hour(conn, hour)
        rolled_hours = 1
        new_until = hour + HOUR
    if before_clear is not None and first is not None:
        before_clear(floor_hour(first))
    # Hours skipped or rolled up here have no rollup rows yet; marks for them that this snapshot sees
    # are folded in. Marks committed after it stay, and the hour is recomputed on the next pass.
    clear = [rollup_dirty.c.hour < new_until]
    if rolled is not None:
        clear.append(rollup_dirty.c.hour >= rolled)
    conn.execute(rollup_dirty.delete().where(*clear))
    # The live refresher's finer rows of these hours (store/sql/rollup/live.py) are superseded by the hour's.
    for table in ROLLUP_TABLES:
        conn.execute(table.delete().where(table.c.grain.in_(FINE_GRAINS), table.c.bucket_start < new_until))
    conn.execute(sa.update(rollup_state).where(rollup_state.c.id == 1).values(rolled_until=new_until))
    # Days that this step completes and that have hourly rows: only the day rolled_until was in (its
    # earlier hours) and the day of the hour just rolled; skipped days are empty.
    candidates = {floor_day(rolled)} if rolled is not None and rolled != floor_day(rolled) else set()
    if first is not None:
        candidates.add(floor_day(first))
    completed = sorted(d for d in candidates if d + DAY <= new_until and (rolled is None or d + DAY > rolled))
    merged = merge_buckets(conn, "day", completed, DAY, "hour")
    return rolled_hours, merged, new_until


def _delete_bucket(conn: sa.Connection, grain: str, start: datetime) -> None:
    for table in ROLLUP_TABLES:
        conn.execute(
            table.delete().where(table.c.grain == grain, table.c.level.in_(LEVELS), table.c.bucket_start == start)
        )


def _roll_hour(conn: sa.Connection, hour: datetime) -> None:
    """Replace the hourly rollup rows of ``hour`` with a fresh computation from the raw tables."""
    _delete_bucket(conn, "hour", hour)
    keys = rollup_keys()
    in_hour = [runs.c.started_at >= hour, runs.c.started_at < hour + HOUR]
    attribute(conn, in_hour)  # the hour's finished runs whose stored self time is missing or stale
    agg = aggregate_raw(conn, in_hour, keys, keys)
    write_levels(conn, "hour", hour, agg)


def write_levels(conn: sa.Connection, grain: str, start: datetime, detail: Aggregates) -> None:
    """Write aggregates keyed by (project, full identity, …) as rows of every stored level."""
    run_rows: dict[tuple[Any, ...], RunAgg] = {}
    failure_rows: dict[tuple[Any, ...], int] = {}
    step_rows: dict[tuple[Any, ...], StepAgg] = {}
    for level in LEVELS:
        for identity, agg in detail.runs.items():
            key = (level, *project(level, identity))
            target = run_rows.get(key)
            if target is None:
                target = run_rows[key] = RunAgg()
            target.add(agg)
        for fkey, n in detail.failures.items():
            key = (level, *project(level, fkey[:4]), *fkey[4:])
            failure_rows[key] = failure_rows.get(key, 0) + n
        for skey, step in detail.steps.items():
            key = (level, *project(level, skey[:4]), *skey[4:])
            found = step_rows.get(key)
            if found is None:
                found = step_rows[key] = StepAgg()
            found.add(step)
    # The tables' key order: project, grain, level, bucket_start, ...
    def head(key: tuple[Any, ...]) -> tuple[Any, ...]:
        return (key[1], grain, key[0], start, *key[2:])

    _insert_rows(conn, rollup_runs, [
        (*head(key), *(getattr(a, n) for n in RunAgg.COUNTERS), a.last_started_at, orjson.dumps(a.hist.to_doc()))
        for key, a in run_rows.items() if a.last_started_at is not None
    ])
    _insert_rows(conn, rollup_failures, [(*head(key), n) for key, n in failure_rows.items()])
    _insert_rows(conn, rollup_steps, [
        (*head(key), *(getattr(s, n) for n in StepAgg.COUNTERS), orjson.dumps(s.hist.to_doc()))
        for key, s in step_rows.items()
    ])


def _insert_rows(conn: sa.Connection, table: sa.Table, rows: list[tuple[Any, ...]]) -> None:
    """One driver executemany of rows given in the table's column order (histograms already JSON-encoded).

    SQLAlchemy's per-row parameter handling cost more than the refresh's queries; the timestamp
    columns still go through their type's bind processor, so they are stored exactly as elsewhere.
    """
    if not rows:
        return
    dialect = conn.dialect
    columns = list(table.c)
    marks = paramstyle_marks(dialect, columns)
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    for i, column in enumerate(columns):
        if isinstance(column.type, sa.JSON):
            converters.append((i, bytes.decode))
            continue
        proc = bind_processor(column, dialect)
        if proc is not unchanged:
            converters.append((i, proc))
    params = []
    for row in rows:
        values = list(row)
        for i, convert in converters:
            values[i] = convert(values[i])
        params.append(tuple(values))
    names = ", ".join(c.name for c in columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({', '.join(marks)})", params)


def _merge_into(into: dict[Any, Any], key: tuple[Any, ...], agg: RunAgg | StepAgg) -> None:
    found = into.get(key)
    if found is None:
        into[key] = agg
    else:
        found.add(agg)


def _parts(table: sa.Table, grain: str, start: datetime, length: timedelta) -> list[sa.ColumnElement[bool]]:
    # The full-identity level of the bucket's parts: summing it and projecting again gives every level,
    # cheaper than reading all six levels of every part.
    return [table.c.grain == grain, table.c.level == max(LEVELS), table.c.bucket_start >= start,
            table.c.bucket_start < start + length]


def merge_buckets(conn: sa.Connection, grain: str, starts: list[datetime], length: timedelta, parts: str) -> int:
    """Rewrite the ``grain`` rows of the buckets at ``starts`` (each ``length`` long) as the sums of their rows of
    the finer grain ``parts`` (days from hours, minutes from 10 s); return how many buckets."""
    r, f, s = rollup_runs, rollup_failures, rollup_steps
    for day in starts:
        _delete_bucket(conn, grain, day)
        detail = Aggregates()
        run_query = sa.select(r.c.project, r.c.agent_id, r.c.agent_version, r.c.environment,
                              *[r.c[n] for n in RunAgg.COUNTERS], r.c.last_started_at,
                              sa.cast(r.c.duration_hist, sa.Text))
        run_query = run_query.where(*_parts(r, parts, day, length))
        for row in conn.execute(run_query):
            agg = RunAgg(*row[4:4 + len(RunAgg.COUNTERS)])
            agg.last_started_at = row[-2]
            agg.hist.add_doc(orjson.loads(row[-1]))
            _merge_into(detail.runs, tuple(row[:4]), agg)
        failure_query = sa.select(f.c.project, f.c.agent_id, f.c.agent_version, f.c.environment, f.c.failure_type,
                                  f.c.failure_code, f.c.runs).where(*_parts(f, parts, day, length))
        for frow in conn.execute(failure_query):
            fkey = tuple(frow[:6])
            detail.failures[fkey] = detail.failures.get(fkey, 0) + int(frow[6])
        step_query = sa.select(s.c.project, s.c.agent_id, s.c.agent_version, s.c.environment, s.c.step_type,
                               s.c.name, *[s.c[n] for n in StepAgg.COUNTERS],
                               sa.cast(s.c.latency_hist, sa.Text)).where(*_parts(s, parts, day, length))
        for srow in conn.execute(step_query):
            step = StepAgg(*srow[6:6 + len(StepAgg.COUNTERS)])
            step.hist.add_doc(orjson.loads(srow[-1]))
            _merge_into(detail.steps, tuple(srow[:6]), step)
        write_levels(conn, grain, day, detail)
    return len(starts)
