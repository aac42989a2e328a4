"""Retention: delete whole runs (with their steps and failure) older than a cut-off.

A run's age is its ``started_at``; a placeholder run that never received its ``run_start`` event is
aged by ``ingested_at`` instead. Runs are removed a batch at a time, each batch in its own short
transaction (failures, then steps, then the runs), so the ingest writer waits at most one small
batch for a lock — on SQLite, where a writer locks the whole file, and on PostgreSQL alike.

``delete_project`` removes a whole project the same way (its runs, key bindings — revoking every key
left bound to no project — and its row; no other project's rows are touched).

Used by ``agenttracer prune --older-than`` and by a background thread in the ingest process
(:class:`RetentionWorker`), which keeps each project's runs for its own ``retention_days``
(``agenttracer projects create P --retention-days N``), else for ``AGENTTRACER_RETENTION_DAYS``, else
for ever: one prune per project with a retention, each inside its project only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from agenttracer.store.periodic import PeriodicWorker
from agenttracer.store.records import Deleted, PruneResult
from agenttracer.store.sql.rollup.marks import mark_dirty
from agenttracer.store.sql.schema.tables import api_key_projects, api_keys, failures, projects, runs, steps

log = logging.getLogger("agenttracer.retention")

DEFAULT_BATCH_SIZE = 500
DEFAULT_INTERVAL_S = 3600.0
# The first pass runs shortly after the process starts (a pass with nothing to do is one indexed
# query), so a server that was down for a while catches up at once.
FIRST_PASS_DELAY_S = 1.0

def _old_run_conditions(cutoff: datetime, project: str | None = None) -> list[sa.ColumnElement[bool]]:
    """Two separate conditions rather than one OR, so each batch is a short range scan of the
    ``started_at`` index (``project``, started_at with a project) instead of a bitmap over every old run."""
    inside = [runs.c.project == project] if project is not None else []
    return [
        sa.and_(*inside, runs.c.started_at < cutoff),
        sa.and_(*inside, runs.c.started_at.is_(None), runs.c.ingested_at < cutoff),
    ]


def _old_runs(cutoff: datetime, project: str | None = None) -> sa.ColumnElement[bool]:
    return sa.or_(*_old_run_conditions(cutoff, project))


def count_prunable(engine: sa.Engine, cutoff: datetime, project: str | None = None) -> PruneResult:
    """What a prune at ``cutoff`` would delete, without deleting anything."""
    old = _old_runs(cutoff, project)
    old_ids = sa.select(runs.c.run_id).where(old)
    with engine.connect() as conn:
        n_runs = conn.execute(sa.select(sa.func.count()).select_from(runs).where(old)).scalar_one()
        n_steps = conn.execute(
            sa.select(sa.func.count()).select_from(steps).where(steps.c.run_id.in_(old_ids))
        ).scalar_one()
        n_failures = conn.execute(
            sa.select(sa.func.count()).select_from(failures).where(failures.c.run_id.in_(old_ids))
        ).scalar_one()
    return PruneResult(cutoff, int(n_runs), int(n_steps), int(n_failures), batches=0, dry_run=True)


@dataclass(frozen=True)
class RemovedBatch:
    """What one ``delete_run_batch`` took: the runs it found, and the rows it deleted of each table."""

    found: int
    runs: int
    steps: int
    failures: int


def delete_run_batch(conn: sa.Connection, condition: sa.ColumnElement[bool], batch_size: int) -> RemovedBatch:
    """Delete up to ``batch_size`` runs matching ``condition`` with their steps and failure, in the
    caller's transaction: the one way whole runs leave the store (retention and project deletion)."""
    found = conn.execute(sa.select(runs.c.run_id, runs.c.started_at).where(condition).limit(batch_size)).all()
    if not found:
        return RemovedBatch(0, 0, 0, 0)
    ids = [run_id for run_id, _ in found]
    # The rollups of these runs' hours must lose them (store/sql/rollup/refresh.py).
    mark_dirty(conn, {started for _, started in found if started is not None})
    # Children first: correct whether or not the database enforces ON DELETE CASCADE.
    n_failures = conn.execute(failures.delete().where(failures.c.run_id.in_(ids))).rowcount or 0
    n_steps = conn.execute(steps.delete().where(steps.c.run_id.in_(ids))).rowcount or 0
    n_runs = conn.execute(runs.delete().where(runs.c.run_id.in_(ids))).rowcount or 0
    return RemovedBatch(len(found), n_runs, n_steps, n_failures)


def prune(
    engine: sa.Engine,
    older_than: timedelta,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    now: datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    project: str | None = None,
) -> PruneResult:
    """Delete runs older than ``older_than`` (relative to ``now``) in batches of ``batch_size`` runs, of
    ``project`` only when given."""
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    cutoff = (now or datetime.now(timezone.utc)) - older_than
    if dry_run:
        return count_prunable(engine, cutoff, project)
    n_runs = n_steps = n_failures = batches = 0
    for condition in _old_run_conditions(cutoff, project):
        while not should_stop():
            with engine.begin() as conn:
                removed = delete_run_batch(conn, condition, batch_size)
            n_runs, n_steps, n_failures = n_runs + removed.runs, n_steps + removed.steps, n_failures + removed.failures
            if removed.found == 0:
                break
            batches += 1
            if removed.found < batch_size:
                break
    return PruneResult(cutoff, n_runs, n_steps, n_failures, batches, dry_run=False)


def retention_days_by_project(engine: sa.Engine, default_days: int | None) -> dict[str, int]:
    """Each project's retention: its own ``retention_days``, else ``default_days``; projects kept for
    ever are left out."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(projects.c.slug, projects.c.retention_days).order_by(projects.c.slug)).all()
    out = {slug: days or default_days for slug, days in rows}
    return {slug: days for slug, days in out.items() if days}


class RetentionWorker(PeriodicWorker[PruneResult]):
    """A daemon thread that prunes, every ``interval_s`` seconds, each project's runs older than its
    retention (``days``: the deployment's, for projects without their own; None: keep those for ever).

    ``stop()`` interrupts the wait and the batch loop (after the batch in flight commits).
    """

    thread_name = "agenttracer-retention"
    log = log

    def __init__(
        self,
        engine: sa.Engine,
        days: int | None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        first_delay_s: float = FIRST_PASS_DELAY_S,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if days is not None and days <= 0:
            raise ValueError("retention days must be positive")
        super().__init__(interval_s=interval_s, first_delay_s=first_delay_s)
        self.engine = engine
        self.days = days
        self.batch_size = batch_size
        # Rows deleted by this worker since it started, per table (the server's metrics read them).
        self.deleted = {"runs": 0, "steps": 0, "failures": 0}

    def _pass(self) -> PruneResult:
        now = datetime.now(timezone.utc)
        total = PruneResult(now, 0, 0, 0, 0, dry_run=False)
        for project, days in retention_days_by_project(self.engine, self.days).items():
            if self._stop.is_set():
                break
            result = prune(self.engine, timedelta(days=days), batch_size=self.batch_size, now=now,
                           should_stop=self._stop.is_set, project=project)
            self.deleted["runs"] += result.runs
            self.deleted["steps"] += result.steps
            self.deleted["failures"] += result.failures
            if result.runs:
                log.info(
                    "retention: deleted %d runs, %d steps, %d failures of project %s older than %s in %d batches",
                    result.runs, result.steps, result.failures, project, result.cutoff.isoformat(), result.batches,
                )
            total = PruneResult(min(total.cutoff, result.cutoff), total.runs + result.runs, total.steps + result.steps,
                                total.failures + result.failures, total.batches + result.batches, dry_run=False)
        return total


def start_retention(
    engine: sa.Engine,
    retention_days: int | None,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    first_delay_s: float = FIRST_PASS_DELAY_S,
) -> RetentionWorker:
    """Start the periodic prune: each project by its own retention, else by ``retention_days``
    (``settings.retention_days``; None or 0: keep those for ever). Started even when nothing has a
    retention yet — a pass then only reads the projects — so a project given one later is pruned from the
    next pass on, without a restart.

    The ingest process calls this after it starts serving and ``stop()`` on the result when it exits.
    """
    return RetentionWorker(engine, retention_days or None, interval_s=interval_s, first_delay_s=first_delay_s).start()


def delete_project(engine: sa.Engine, slug: str, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Deleted | None:
    """Delete ``slug`` and everything in it; None when there is no such project.

    Runs go a batch at a time in short transactions (as retention does), so writers of other projects
    wait at most one batch; the project row goes last, so an interrupted delete can be run again.
    """
    with engine.connect() as conn:
        if conn.execute(sa.select(projects.c.slug).where(projects.c.slug == slug)).first() is None:
            return None
    n_runs = n_steps = n_failures = 0
    while True:
        with engine.begin() as conn:
            removed = delete_run_batch(conn, runs.c.project == slug, batch_size)
        n_runs, n_steps, n_failures = n_runs + removed.runs, n_steps + removed.steps, n_failures + removed.failures
        if removed.found == 0:
            break
    with engine.begin() as conn:
        bound = sa.select(api_key_projects.c.key_id).where(api_key_projects.c.project == slug)
        affected = list(conn.execute(bound).scalars())
        conn.execute(api_key_projects.delete().where(api_key_projects.c.project == slug))
        still_bound = sa.select(api_key_projects.c.key_id).where(api_key_projects.c.key_id == api_keys.c.key_id)
        revoked = conn.execute(
            api_keys.update()
            .where(api_keys.c.key_id.in_(affected), api_keys.c.revoked_at.is_(None), ~sa.exists(still_bound))
            .values(revoked_at=datetime.now(timezone.utc))
        ).rowcount or 0
        conn.execute(projects.delete().where(projects.c.slug == slug))
    return Deleted(n_runs, n_steps, n_failures, revoked)
