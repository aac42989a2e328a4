"""``ClickHouseStore``: the store interface (``store/interface.py``) on ClickHouse, embedded (chdb) or a
server. Each method hands over to the module that does the work (``write/``, ``read/``, ``keys.py``,
``projects.py``, ``schema/``); this module owns the connections and the classification of errors.

Connections: the writes and jobs share one ``Connection`` (a chdb session and a clickhouse-connect
client are both safe to share between threads); each read session opens its own, so a cancelled or
timed-out read never disturbs a write. The Query API's store (``readonly``) only reads, through its
readers. chdb serves one directory per process, so the ingest and query stores of ``agenttracer up``
share it in one process; a second process on the same directory is refused (ClickHouseUnavailable).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone

from agenttracer.model import DEFAULT_PROJECT
from agenttracer.store.clickhouse import keys as key_rows
from agenttracer.store.clickhouse import projects as project_rows
from agenttracer.store.clickhouse.connection import (
    CANNOT_WRITE_CODES,
    QUERY_WAS_CANCELLED,
    TIMEOUT_EXCEEDED,
    ClickHouseError,
    ClickHouseUnavailable,
    Connection,
    connect,
)
from agenttracer.store.clickhouse.read.session import ClickHouseReader
from agenttracer.store.clickhouse.readonly import ReadOnly
from agenttracer.store.clickhouse.schema import migrate as migrations
from agenttracer.store.clickhouse.transfer import ClickHouseTransfer
from agenttracer.store.clickhouse.write import abandon, otlp_write, retention, writer
from agenttracer.store.clickhouse.write.workers import RetentionWorker, RollupWorker, SweepWorker
from agenttracer.store.interface import OpenOptions, Reader, ShouldStop, Stopped, Workers
from agenttracer.store.keys import KeyInfo, Verification
from agenttracer.store.otlp_assemble import SpanRecord
from agenttracer.store.projects import ProjectInfo
from agenttracer.store.records import Deleted, PruneResult, RefreshResult, SweepResult, WriteReport, Written
from agenttracer.store.run_state import Incoming, Outcome
from agenttracer.store.transfer import Transfer


class StoreReader(ClickHouseReader):
    """The read session the apps get: the Query API's reads (``read/session.py``) plus the keys and
    projects the auth layer and the project endpoints read."""

    def list_projects(self, only: frozenset[str] | None = None) -> list[ProjectInfo]:
        return project_rows.list_projects(self.conn, only)

    def project_slugs(self) -> tuple[str, ...]:
        return project_rows.project_slugs(self.conn)

    def verify_key(self, key: str) -> Verification:
        return key_rows.verify_key(self.conn, key)

    def any_key_exists(self) -> bool:
        return key_rows.any_key_exists(self.conn)


# How long after its end a unit of time is left alone before the rollups fold it in (late events settle).
ROLLUP_SETTLE = timedelta(minutes=2)


def open_store(url: str, options: OpenOptions) -> ClickHouseStore:
    """The backend opener ``store.open_store`` calls for clickhouse:// and chdb:// URLs."""
    return ClickHouseStore(url, options)


class ClickHouseStore:
    """``interface.Store`` on ClickHouse."""

    backend = "clickhouse"
    unavailable_errors: tuple[type[Exception], ...] = (ClickHouseUnavailable,)
    database_errors: tuple[type[Exception], ...] = (ClickHouseError,)

    def __init__(self, url: str, options: OpenOptions | None = None) -> None:
        self.url = url
        self.options = options or OpenOptions()
        self.conn: Connection = self._connect()

    def _connect(self) -> Connection:
        conn = connect(self.url)
        return ReadOnly(conn) if self.options.readonly else conn

    # -- schema -------------------------------------------------------------------------------------

    def migrate(self) -> None:
        migrations.upgrade(self.conn)

    def current_revision(self) -> str | None:
        return migrations.current_revision(self.conn)

    # -- writes -------------------------------------------------------------------------------------

    def write_batch(
        self,
        events: Sequence[Incoming],
        *,
        now: datetime | None = None,
        report: WriteReport | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> list[Outcome]:
        return writer.write_batch(self.conn, events, now=now, report=report, project=project)

    def write_spans(self, spans: Sequence[SpanRecord], now: datetime, *, project: str = DEFAULT_PROJECT) -> Written:
        return otlp_write.write_spans(self.conn, spans, now, project=project)

    def probe_write(self) -> None:
        writer.probe_write(self.conn)

    # -- reads --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reader(self, should_stop: ShouldStop | None = None) -> Iterator[Reader]:
        if should_stop is not None and should_stop():
            raise Stopped()
        conn = self._connect()
        try:
            # ``connect``: the reader's cancel() sends KILL QUERY over a connection of its own.
            yield StoreReader(conn, statement_timeout_ms=self.options.statement_timeout_ms,
                                   should_stop=should_stop, connect=lambda: connect(self.url))  # fmt: skip
        finally:
            conn.close()

    def ping(self) -> None:
        self.conn.query("SELECT 1")

    # -- errors -------------------------------------------------------------------------------------

    def is_unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, ClickHouseUnavailable)

    def is_timeout(self, exc: BaseException) -> bool:
        # A statement past max_execution_time, or killed by the reader's cancel() at the deadline.
        return isinstance(exc, ClickHouseError) and exc.code in (TIMEOUT_EXCEEDED, QUERY_WAS_CANCELLED)

    def cannot_write(self, exc: BaseException) -> bool:
        return isinstance(exc, ClickHouseUnavailable) or (
            isinstance(exc, ClickHouseError) and exc.code in CANNOT_WRITE_CODES
        )

    # -- keys and projects --------------------------------------------------------------------------

    def create_key(
        self, scope: str, name: str | None = None, *, projects: Sequence[str] = (DEFAULT_PROJECT,),
        admin: bool = False,
    ) -> tuple[KeyInfo, str]:  # fmt: skip
        return key_rows.create_key(self.conn, scope, name, projects=projects, admin=admin)

    def list_keys(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        return key_rows.list_keys(self.conn, include_revoked=include_revoked)

    def revoke_key(self, key_id: str) -> bool:
        return key_rows.revoke_key(self.conn, key_id)

    def create_project(self, slug: str, retention_days: int | None = None) -> ProjectInfo:
        return project_rows.create_project(self.conn, slug, retention_days)

    def set_retention(self, slug: str, retention_days: int | None) -> bool:
        return project_rows.set_retention(self.conn, slug, retention_days)

    def delete_project(self, slug: str) -> Deleted | None:
        return retention.delete_project(self.conn, slug)

    # -- jobs ---------------------------------------------------------------------------------------

    def prune(
        self,
        older_than: timedelta,
        *,
        batch_size: int | None = None,  # no per-batch transactions here: partitions drop whole, the rest at once
        dry_run: bool = False,
        now: datetime | None = None,
        should_stop: ShouldStop = lambda: False,
        project: str | None = None,
    ) -> PruneResult:
        return retention.prune(self.conn, older_than, dry_run=dry_run, now=now, should_stop=should_stop,
                               project=project)  # fmt: skip

    def sweep(
        self, timeout: timedelta, *, now: datetime | None = None, max_batches: int | None = None,
        should_stop: ShouldStop = lambda: False,
    ) -> SweepResult:  # fmt: skip
        return abandon.sweep(self.conn, timeout, now=now, should_stop=should_stop,
                             max_batches=abandon.MAX_BATCHES if max_batches is None else max_batches)  # fmt: skip

    def refresh_rollups(
        self, *, settle: timedelta | None = None, rebuild: bool = False, now: datetime | None = None,
        should_stop: ShouldStop = lambda: False,
    ) -> RefreshResult:  # fmt: skip
        from agenttracer.store.clickhouse import rollup

        started = time.perf_counter()
        if rebuild:  # every unit and every day then looks stale and is recomputed
            self.conn.command("TRUNCATE TABLE IF EXISTS rollup_sources")
            self.conn.command("TRUNCATE TABLE IF EXISTS rollup_days")
        now = now or datetime.now(timezone.utc)
        done = rollup.refresh(self.conn, now=now, settle=settle or ROLLUP_SETTLE)
        return RefreshResult(hours=done.units, days=done.days, rolled_until=now - (settle or ROLLUP_SETTLE),
                             dirty_left=0, seconds=time.perf_counter() - started)  # fmt: skip

    def start_workers(
        self,
        *,
        retention_days: int | None,
        rollup_interval_s: float,
        rollup_settle_s: float,
        rollup_live_interval_s: float,
        run_timeout_s: int,
    ) -> Workers:
        workers = Workers()
        workers.retention = RetentionWorker(self.conn, retention_days or None).start()
        if run_timeout_s:
            workers.sweep = SweepWorker(self.conn, run_timeout_s).start()
        if rollup_interval_s:
            settle = timedelta(seconds=rollup_settle_s)
            workers.rollup = RollupWorker(lambda: self.refresh_rollups(settle=settle), rollup_interval_s).start()
        return workers

    def transfer(self) -> Transfer:
        return ClickHouseTransfer(self.conn)

    def close(self) -> None:
        self.conn.close()
