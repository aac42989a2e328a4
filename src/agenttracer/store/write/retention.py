"""Retention: delete whole runs (with their steps and failure) older than a cut-off.

A run's age is its ``started_at``; a placeholder run that never received its ``run_start`` event is
aged by ``ingested_at`` instead. Runs are removed a batch at a time, each batch in its own short
transaction (failures, then steps, then the runs), so the ingest writer waits at most one small
batch for a lock — on SQLite, where a writer locks the whole file, and on PostgreSQL alike.

Used by ``agenttracer prune --older-than`` and, when ``AGENTTRACER_RETENTION_DAYS`` is set, by a
background thread in the ingest process (:class:`RetentionWorker`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from agenttracer.store.periodic import PeriodicWorker
from agenttracer.store.rollup.marks import mark_dirty
from agenttracer.store.schema.tables import failures, runs, steps

log = logging.getLogger("agenttracer.retention")

DEFAULT_BATCH_SIZE = 500
DEFAULT_INTERVAL_S = 3600.0
# The first pass runs shortly after the process starts (a pass with nothing to do is one indexed
# query), so a server that was down for a while catches up at once.
FIRST_PASS_DELAY_S = 1.0

_DURATION = re.compile(r"^\s*(\d+)\s*([dhm]?)\s*$")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "": 86_400}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m`` or a bare number of days → a positive timedelta."""
    match = _DURATION.match(text.lower())
    if not match or int(match.group(1)) <= 0:
        raise ValueError("expected a positive age such as 30d, 12h or 90m (a bare number means days)")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


@dataclass(frozen=True)
class PruneResult:
    cutoff: datetime
    runs: int
    steps: int
    failures: int
    batches: int
    dry_run: bool


def _old_run_conditions(cutoff: datetime) -> list[sa.ColumnElement[bool]]:
    """Two separate conditions rather than one OR, so each batch is a short range scan of the
    ``started_at`` index instead of a bitmap over every old run."""
    return [
        runs.c.started_at < cutoff,
        sa.and_(runs.c.started_at.is_(None), runs.c.ingested_at < cutoff),
    ]


def _old_runs(cutoff: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(*_old_run_conditions(cutoff))


def count_prunable(engine: sa.Engine, cutoff: datetime) -> PruneResult:
    """What a prune at ``cutoff`` would delete, without deleting anything."""
    old_ids = sa.select(runs.c.run_id).where(_old_runs(cutoff))
    with engine.connect() as conn:
        n_runs = conn.execute(sa.select(sa.func.count()).select_from(runs).where(_old_runs(cutoff))).scalar_one()
        n_steps = conn.execute(
            sa.select(sa.func.count()).select_from(steps).where(steps.c.run_id.in_(old_ids))
        ).scalar_one()
        n_failures = conn.execute(
            sa.select(sa.func.count()).select_from(failures).where(failures.c.run_id.in_(old_ids))
        ).scalar_one()
    return PruneResult(cutoff, int(n_runs), int(n_steps), int(n_failures), batches=0, dry_run=True)


def prune(
    engine: sa.Engine,
    older_than: timedelta,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    now: datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PruneResult:
    """Delete runs older than ``older_than`` (relative to ``now``) in batches of ``batch_size`` runs."""
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    cutoff = (now or datetime.now(timezone.utc)) - older_than
    if dry_run:
        return count_prunable(engine, cutoff)
    n_runs = n_steps = n_failures = batches = 0
    for condition in _old_run_conditions(cutoff):
        while not should_stop():
            with engine.begin() as conn:
                batch = sa.select(runs.c.run_id, runs.c.started_at).where(condition).limit(batch_size)
                found = conn.execute(batch).all()
                if not found:
                    break
                ids = [run_id for run_id, _ in found]
                # The rollups of these runs' hours must lose them (store/rollup/refresh.py).
                mark_dirty(conn, {started for _, started in found if started is not None})
                # Children first: correct whether or not the database enforces ON DELETE CASCADE.
                n_failures += conn.execute(failures.delete().where(failures.c.run_id.in_(ids))).rowcount or 0
                n_steps += conn.execute(steps.delete().where(steps.c.run_id.in_(ids))).rowcount or 0
                n_runs += conn.execute(runs.delete().where(runs.c.run_id.in_(ids))).rowcount or 0
            batches += 1
            if len(ids) < batch_size:
                break
    return PruneResult(cutoff, n_runs, n_steps, n_failures, batches, dry_run=False)


class RetentionWorker(PeriodicWorker[PruneResult]):
    """A daemon thread that prunes runs older than ``days`` every ``interval_s`` seconds.

    ``stop()`` interrupts the wait and the batch loop (after the batch in flight commits).
    """

    thread_name = "agenttracer-retention"
    log = log

    def __init__(
        self,
        engine: sa.Engine,
        days: int,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        first_delay_s: float = FIRST_PASS_DELAY_S,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if days <= 0:
            raise ValueError("retention days must be positive")
        super().__init__(interval_s=interval_s, first_delay_s=first_delay_s)
        self.engine = engine
        self.older_than = timedelta(days=days)
        self.batch_size = batch_size
        # Rows deleted by this worker since it started, per table (the server's metrics read them).
        self.deleted = {"runs": 0, "steps": 0, "failures": 0}

    def _pass(self) -> PruneResult:
        result = prune(self.engine, self.older_than, batch_size=self.batch_size, should_stop=self._stop.is_set)
        if not result.dry_run:
            self.deleted["runs"] += result.runs
            self.deleted["steps"] += result.steps
            self.deleted["failures"] += result.failures
        if result.runs:
            log.info(
                "retention: deleted %d runs, %d steps, %d failures older than %s in %d batches",
                result.runs, result.steps, result.failures, result.cutoff.isoformat(), result.batches,
            )
        return result


def start_retention(
    engine: sa.Engine,
    retention_days: int | None,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    first_delay_s: float = FIRST_PASS_DELAY_S,
) -> RetentionWorker | None:
    """Start the periodic prune when ``retention_days`` is set (``settings.retention_days``); else None.

    The ingest process calls this after it starts serving and ``stop()`` on the result when it exits.
    """
    if not retention_days:
        return None
    return RetentionWorker(engine, retention_days, interval_s=interval_s, first_delay_s=first_delay_s).start()
