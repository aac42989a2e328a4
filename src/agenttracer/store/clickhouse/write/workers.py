"""The ingest process's background jobs on ClickHouse: the abandoned-run sweep and retention, each a
``PeriodicWorker`` (a daemon thread that survives failed passes, backing off, and logs no values)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.write import abandon, retention
from agenttracer.store.periodic import PeriodicWorker
from agenttracer.store.records import Closed, PruneResult, RefreshResult, SweepResult, sweep_interval

RETENTION_INTERVAL_S = 3600.0


class SweepWorker(PeriodicWorker[SweepResult]):
    """Closes abandoned runs every ``sweep_interval(timeout_s)`` seconds; ``closed`` counts them."""

    thread_name = "agenttracer-sweep"
    log = logging.getLogger("agenttracer.sweep")

    def __init__(self, conn: Connection, timeout_s: float, *, first_delay_s: float = 1.0) -> None:
        super().__init__(interval_s=sweep_interval(timeout_s), first_delay_s=first_delay_s)
        self.conn = conn
        self.timeout = timedelta(seconds=timeout_s)
        self.closed = 0
        self.on_closed: Callable[[list[Closed]], None] | None = None

    def _pass(self) -> SweepResult:
        result = abandon.sweep(self.conn, self.timeout, should_stop=self._stop.is_set)
        if result.closed:
            self.closed += len(result.closed)
            self.log.info("sweep: closed %d abandoned runs in %.2f s", len(result.closed), result.seconds)
            if self.on_closed is not None:
                self.on_closed(result.closed)
        return result


class RetentionWorker(PeriodicWorker[PruneResult]):
    """Prunes each project's runs older than its retention (``days`` for projects without their own)."""

    thread_name = "agenttracer-retention"
    log = logging.getLogger("agenttracer.retention")

    def __init__(self, conn: Connection, days: int | None, *, first_delay_s: float = 1.0) -> None:
        super().__init__(interval_s=RETENTION_INTERVAL_S, first_delay_s=first_delay_s)
        self.conn = conn
        self.days = days
        self.deleted = {"runs": 0, "steps": 0, "failures": 0}

    def _pass(self) -> PruneResult:
        now = datetime.now(timezone.utc)
        total = PruneResult(now, 0, 0, 0, 0, dry_run=False)
        for project, days in retention.retention_days_by_project(self.conn, self.days).items():
            if self._stop.is_set():
                break
            result = retention.prune(self.conn, timedelta(days=days), now=now, project=project,
                                     should_stop=self._stop.is_set)  # fmt: skip
            self.deleted["runs"] += result.runs
            self.deleted["steps"] += result.steps
            self.deleted["failures"] += result.failures
            total = PruneResult(min(total.cutoff, result.cutoff), total.runs + result.runs,
                                total.steps + result.steps, total.failures + result.failures,
                                total.batches + result.batches, dry_run=False)  # fmt: skip
        return total


class RollupWorker(PeriodicWorker[RefreshResult]):
    """Folds settled time into the rollups every ``interval_s`` seconds (``refresh``: the store's
    ``refresh_rollups``); ``caught_up_at`` is when a pass last left nothing behind."""

    thread_name = "agenttracer-rollup"
    log = logging.getLogger("agenttracer.rollup")

    def __init__(self, refresh: Callable[[], RefreshResult], interval_s: float, *, first_delay_s: float = 1.0) -> None:
        super().__init__(interval_s=interval_s, first_delay_s=first_delay_s)
        self.refresh = refresh
        self.caught_up_at = 0.0

    def _pass(self) -> RefreshResult:
        result = self.refresh()
        if not result.dirty_left:
            self.caught_up_at = time.time()
        return result
