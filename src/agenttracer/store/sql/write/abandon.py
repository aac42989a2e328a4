"""Abandoned runs: the sweep that closes runs whose events stopped, and what a late event undoes.

A run whose process died (killed, evicted, crashed past the SDK's atexit flush) never sends its
``run_end`` or root span. The sweep closes every ``running`` run whose last stored event is older
than ``AGENTTRACER_RUN_TIMEOUT_S``: status ``failure``, ``runs.abandoned`` set, its end the latest
event time the run holds (its start, its steps' ends, a recorded failure), and — unless the agent
had already recorded a failure, which stays the run's one failure — the failure
``orchestration`` / ``abandoned`` with no causing step. The rollup marks of the runs' buckets are
written in the same transaction, so stats, compare and the dashboard count the runs at once.

"Last stored event" is ``runs.updated_at``: the server's clock when a write last changed the run. The
server's clock and not the events' own times, so an agent whose clock is off is not swept while it
works, and a delivery delayed by an outage counts from when it arrived.

Cheap and safe with any number of ingest processes and restarts:

* one partial index (migration 0008) holds only running runs, by ``updated_at``: a pass reads the
  oldest candidates first, ``BATCH_SIZE`` runs per transaction, at most ``MAX_BATCHES`` per pass;
* each batch is ONE conditional ``UPDATE … WHERE status = 'running' AND updated_at < cutoff``, so a
  run that a writer touched or settled meanwhile is left alone and a run is closed once whoever
  sweeps; on PostgreSQL the candidates are taken ``FOR UPDATE SKIP LOCKED`` (concurrent sweepers
  split the work, and a sweep never waits on a writer's batch or the reverse for long).

A later event for a closed run is stored and settles it by the normal rules: the writers reopen it
in memory (``run_state.reopen_abandoned``) and, when the batch changes the run, ``settle_reopened``
clears the flag and deletes the sweep's failure in the batch's own transaction. A late ``run_end``
or root span therefore replaces the verdict; a late step makes the run ``running`` again, and the
sweep closes it again if it goes quiet once more (docs/failure-handling.md says why).

Used by the ingest process (``AbandonWorker``, started by ``start_sweep``) and ``agenttracer sweep``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from agenttracer.model import ABANDONED_CODE, RunStatus
from agenttracer.store.periodic import PeriodicWorker
from agenttracer.store.records import SWEEP_BATCH_SIZE, SWEEP_MAX_BATCHES, Closed, SweepResult, sweep_interval
from agenttracer.store.run_state import ABANDONED_TYPE, RunState
from agenttracer.store.sql.dialect import insert, is_postgres
from agenttracer.store.sql.lock import write_lock
from agenttracer.store.sql.rollup.marks import mark_dirty
from agenttracer.store.sql.schema.tables import failures, runs, steps

log = logging.getLogger("agenttracer.sweep")

DEFAULT_TIMEOUT_S = 3600
BATCH_SIZE = SWEEP_BATCH_SIZE
MAX_BATCHES = SWEEP_MAX_BATCHES
# A literal, not a bound parameter: both planners use the partial index only when the query's
# condition visibly implies the index's.
_RUNNING = sa.text("runs.status = 'running'")
_FAILURE = RunStatus.FAILURE.value


def sweep(
    engine: sa.Engine,
    timeout: timedelta,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    should_stop: Callable[[], bool] = lambda: False,
) -> SweepResult:
    """Close running runs with no new event since ``now - timeout``: at most ``batch_size`` runs per
    transaction and ``max_batches`` transactions (a pass that closes fewer than that found them all)."""
    if timeout <= timedelta(0):
        raise ValueError("the run timeout must be positive")
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    result = SweepResult(cutoff=now - timeout)
    while result.batches < max_batches and not should_stop():
        if not _any_quiet(engine, result.cutoff):
            break  # an idle pass is one index probe: no write transaction, no SQLite writer lock
        with write_lock(engine), engine.begin() as conn:
            closed = close_batch(conn, result.cutoff, now, batch_size)
        result.batches += 1
        result.closed += closed
        if len(closed) < batch_size:
            break
    result.seconds = time.perf_counter() - started
    return result


def _any_quiet(engine: sa.Engine, cutoff: datetime) -> bool:
    with engine.connect() as conn:
        query = sa.select(runs.c.run_id).where(_RUNNING, runs.c.updated_at < cutoff).limit(1)
        return conn.execute(query).first() is not None


def _last_event(postgres: bool) -> sa.ColumnElement[datetime]:
    """The latest event time a run holds: its start, its steps' ends, its recorded failure."""
    step_end = sa.select(sa.func.max(steps.c.ended_at)).where(steps.c.run_id == runs.c.run_id).scalar_subquery()
    failed_at = sa.select(failures.c.recorded_at).where(failures.c.run_id == runs.c.run_id).scalar_subquery()
    start = runs.c.started_at
    if postgres:
        return sa.func.greatest(start, step_end, failed_at)  # greatest() skips NULLs
    # SQLite: max() of several arguments is its greatest() (timestamps are text there, in sortable
    # form), but NULL if any argument is.
    return sa.func.max(sa.func.coalesce(step_end, start), sa.func.coalesce(failed_at, start), start)


def close_batch(conn: sa.Connection, cutoff: datetime, now: datetime, limit: int) -> list[Closed]:
    """Close up to ``limit`` of the oldest abandoned runs in the caller's transaction; return them."""
    candidates = (
        sa.select(runs.c.run_id).where(_RUNNING, runs.c.updated_at < cutoff).order_by(runs.c.updated_at).limit(limit)
    )
    postgres = is_postgres(conn)
    if postgres:
        candidates = candidates.with_for_update(skip_locked=True)
    # A CTE, read once: as an IN subquery PostgreSQL may scan it again, and each scan of a LIMIT with
    # SKIP LOCKED can return other rows (a batch then closed more than ``limit`` runs).
    chosen = candidates.cte("chosen")
    no_failure = runs.c.failure_type.is_(None)
    stmt = (
        runs.update()
        # The guard that makes the sweep safe to run anywhere, any number of times: only a run that is
        # still running and still quiet is closed, whatever happened since the candidates were read.
        .where(runs.c.run_id.in_(sa.select(chosen.c.run_id)), _RUNNING, runs.c.updated_at < cutoff)
        .values(
            status=_FAILURE,
            abandoned=True,
            ended_at=_last_event(postgres),
            failure_type=sa.case((no_failure, ABANDONED_TYPE), else_=runs.c.failure_type),
            failure_code=sa.case((no_failure, ABANDONED_CODE), else_=runs.c.failure_code),
            updated_at=now,
        )
        .returning(
            runs.c.run_id, runs.c.project, runs.c.started_at, runs.c.ended_at, runs.c.agent_id,
            runs.c.agent_version, runs.c.environment, runs.c.failure_type, runs.c.failure_code,
        )
    )
    rows = conn.execute(stmt).all()
    if not rows:
        return []
    durations = [
        {"b_run_id": r.run_id, "b_duration": (r.ended_at - r.started_at).total_seconds() * 1000.0}
        for r in rows
        if r.started_at is not None and r.ended_at is not None
    ]
    if durations:
        by_id = runs.update().where(runs.c.run_id == sa.bindparam("b_run_id"))
        conn.execute(by_id.values(duration_ms=sa.bindparam("b_duration")), durations)
    ours = [
        {"run_id": r.run_id, "failure_type": ABANDONED_TYPE, "failure_code": ABANDONED_CODE, "step_seq": None,
         "message": None, "recorded_at": r.ended_at or now}
        for r in rows
        if r.failure_type == ABANDONED_TYPE and r.failure_code == ABANDONED_CODE
    ]
    if ours:
        conn.execute(insert(conn, failures).on_conflict_do_nothing(index_elements=["run_id"]), ours)
    mark_dirty(conn, [r.started_at for r in rows if r.started_at is not None])
    return [
        Closed(r.run_id, r.project, r.agent_id, r.agent_version, r.environment, r.failure_type, r.failure_code)
        for r in rows
    ]


def settle_reopened(conn: sa.Connection, states: Iterable[RunState]) -> None:
    """Persist what ``reopen_abandoned`` did to runs a batch changes: clear ``runs.abandoned`` and delete
    the sweep's failure rows. Both writers call it in their transaction, before they write a failure of
    their own, for the reopened runs they change; runs a batch leaves as they were stay closed."""
    reopened = [s for s in states if s.reopened]
    if not reopened:
        return
    swept = [s.row["run_id"] for s in reopened if s.sweep_failure]
    if swept:
        conn.execute(failures.delete().where(failures.c.run_id.in_(swept)))
    ids = [s.row["run_id"] for s in reopened]
    conn.execute(runs.update().where(runs.c.run_id.in_(ids)).values(abandoned=False))


class AbandonWorker(PeriodicWorker[SweepResult]):
    """The ingest process's sweep, every ``sweep_interval(timeout_s)`` seconds.

    ``on_closed`` (set by the server's metrics) is called with each pass's closed runs; ``closed`` counts
    the runs this process closed since it started.
    """

    thread_name = "agenttracer-sweep"
    log = log

    def __init__(self, engine: sa.Engine, timeout_s: float, *, interval_s: float | None = None,
                 first_delay_s: float = 1.0) -> None:
        super().__init__(interval_s=interval_s or sweep_interval(timeout_s), first_delay_s=first_delay_s)
        self.engine = engine
        self.timeout = timedelta(seconds=timeout_s)
        self.closed = 0
        self.on_closed: Callable[[list[Closed]], None] | None = None

    def _pass(self) -> SweepResult:
        result = sweep(self.engine, self.timeout, should_stop=self._stop.is_set)
        if result.closed:
            self.closed += len(result.closed)
            log.info("sweep: closed %d abandoned runs (no event since %s) in %.2f s",
                     len(result.closed), result.cutoff.isoformat(), result.seconds)
            if self.on_closed is not None:
                self.on_closed(result.closed)
        return result


def start_sweep(engine: sa.Engine, timeout_s: int) -> AbandonWorker | None:
    """Start the periodic sweep unless ``timeout_s`` is 0 (``settings.run_timeout_s``); else None."""
    if timeout_s <= 0:
        return None
    return AbandonWorker(engine, timeout_s).start()
