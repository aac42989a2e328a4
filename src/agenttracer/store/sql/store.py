"""``SqlStore``: the store interface (``store/interface.py``) on SQLite and PostgreSQL.

Each method hands over to the module that does the work (``write/``, ``read/``, ``rollup/``,
``keys.py``, ``projects.py``, ``schema/``); this module only owns the engine, the read sessions and the
classification of SQLAlchemy's errors, so nothing outside ``store/sql`` needs SQLAlchemy.

A read session (``SqlReader``) is one pooled connection. Stopping it from another thread: PostgreSQL
gets a cancel request for the running statement (psycopg's ``cancel_safe``, on a thread of its own so
the caller never waits for it); SQLite's statement is interrupted (``sqlite3.Connection.interrupt``).
A session's ``should_stop`` is asked by SQLite's progress handler every few thousand virtual-machine
instructions; PostgreSQL statements are bounded by the store's ``statement_timeout`` and by ``cancel``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from agenttracer.model import DEFAULT_PROJECT
from agenttracer.store.compare_result import Comparison
from agenttracer.store.cursors import Cursor
from agenttracer.store.filters import RunFilters
from agenttracer.store.interface import OpenOptions, Reader, ShouldStop, Stopped, Workers
from agenttracer.store.keys import KeyInfo, Verification
from agenttracer.store.otlp_assemble import SpanRecord
from agenttracer.store.projects import ProjectInfo
from agenttracer.store.records import Deleted, PruneResult, RefreshResult, SweepResult, WriteReport, Written
from agenttracer.store.results import RunStats
from agenttracer.store.run_state import Incoming, Outcome
from agenttracer.store.sql import keys as key_rows
from agenttracer.store.sql import projects as project_rows
from agenttracer.store.sql.dialect import SQLITE
from agenttracer.store.sql.read import compare, runs, stats
from agenttracer.store.sql.rollup import live, refresh
from agenttracer.store.sql.schema import migrate
from agenttracer.store.sql.schema.engine import make_engine, timed_out
from agenttracer.store.sql.transfer import SqlTransfer
from agenttracer.store.sql.write import abandon, otlp_write, retention, writer
from agenttracer.store.sql.write.sqlite_checkpoint import AUTOCHECKPOINT_PAGES
from agenttracer.store.transfer import Transfer

# SQLite calls the progress handler every this many virtual-machine instructions (~0.1 ms of work).
PROGRESS_EVERY = 2_000
# A PostgreSQL cancel request is a short-lived connection of its own; past this it is given up.
CANCEL_TIMEOUT_S = 2.0
# Errors that mean "the database is not there right now", not "this request is wrong".
UNAVAILABLE: tuple[type[Exception], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
# SQLSTATEs of a database that is there but cannot take writes now: a read-only transaction (a standby,
# default_transaction_read_only) and the "insufficient resources" class (disk full, out of memory).
_CANNOT_WRITE_SQLSTATES = ("25006", "53")


def open_store(url: str, options: OpenOptions) -> SqlStore:
    """The backend opener ``store.open_store`` calls for sqlite:// and postgresql:// URLs."""
    kwargs: dict[str, Any] = {}
    if options.connections is not None:
        # Exactly this many connections: a job never waits for one, and never makes more.
        kwargs.update(pool_size=options.connections, max_overflow=0, pool_timeout=5)
    engine = make_engine(
        url,
        readonly=options.readonly,
        statement_timeout_ms=options.statement_timeout_ms,
        # The writer checkpoints SQLite's log itself after releasing its lock (write/sqlite_checkpoint.py).
        wal_autocheckpoint=None if options.readonly else AUTOCHECKPOINT_PAGES,
        **kwargs,
    )
    return SqlStore(engine, url=url)


class SqlReader:
    """One read session on one pooled connection (``interface.Reader``)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self._dbapi: Any = conn.connection.dbapi_connection
        self._cancelled = False

    # -- stopping ---------------------------------------------------------------------------------

    def cancel(self) -> None:
        self._cancelled = True
        dbapi = self._dbapi
        if dbapi is None:
            return
        if hasattr(dbapi, "cancel_safe"):
            # A PostgreSQL cancel request opens a connection of its own: never on the caller's thread.
            threading.Thread(target=self._send_cancel, name="query-cancel", daemon=True).start()
            return
        with self._lock:
            # sqlite3: interrupt() is thread-safe and returns at once; under the lock, so the connection
            # has not gone back to the pool (and to another session) meanwhile.
            if self._dbapi is not None:
                self._dbapi.interrupt()

    def _send_cancel(self) -> None:
        with self._lock:
            # Under the lock: the connection is not handed back to the pool (and to another job) meanwhile.
            if self._dbapi is not None:
                with contextlib.suppress(Exception):
                    self._dbapi.cancel_safe(timeout=CANCEL_TIMEOUT_S)

    def _release(self) -> None:
        with self._lock:
            self._dbapi = None

    # -- reads ------------------------------------------------------------------------------------

    def list_runs(
        self, filters: RunFilters, *, limit: int, cursor: Cursor | None = None
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        return runs.list_runs(self.conn, filters, limit=limit, cursor=cursor)

    def runs_with_prefix(self, prefix: str, limit: int, projects: tuple[str, ...] | None = None) -> list[str]:
        return runs.runs_with_prefix(self.conn, prefix, limit, projects=projects)

    def get_run(
        self, run_id: str, *, steps_after: int = 0, steps_limit: int, projects: tuple[str, ...] | None = None
    ) -> dict[str, Any] | None:
        return runs.get_run(self.conn, run_id, steps_after=steps_after, steps_limit=steps_limit, projects=projects)

    def list_agents(self, projects: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        return runs.list_agents(self.conn, projects)

    def run_stats(self, filters: RunFilters, now: datetime | None = None) -> RunStats:
        return stats.run_stats(self.conn, filters, now)

    def compare_versions(
        self,
        agent_id: str,
        base: str,
        candidate: str,
        environment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        projects: tuple[str, ...] | None = None,
    ) -> Comparison:
        return compare.compare_versions(self.conn, agent_id, base, candidate, environment, since, until, projects)

    def list_projects(self, only: frozenset[str] | None = None) -> list[ProjectInfo]:
        return project_rows.list_projects(self.conn, only)

    def project_slugs(self) -> tuple[str, ...]:
        return project_rows.project_slugs(self.conn)

    def verify_key(self, key: str) -> Verification:
        return key_rows.verify_key(self.conn, key)

    def any_key_exists(self) -> bool:
        return key_rows.any_key_exists(self.conn)

    def ping(self) -> None:
        runs.ping(self.conn)


class SqlStore:
    """``interface.Store`` on one SQLAlchemy engine (SQLite or PostgreSQL)."""

    unavailable_errors = UNAVAILABLE
    database_errors: tuple[type[Exception], ...] = (sa.exc.DBAPIError, *UNAVAILABLE)

    def __init__(self, engine: sa.Engine, *, url: str | None = None) -> None:
        self.engine = engine
        self.url = url if url is not None else engine.url.render_as_string(hide_password=False)
        self.backend = engine.dialect.name

    # -- schema -------------------------------------------------------------------------------------

    def migrate(self) -> None:
        migrate.upgrade(self.engine)

    def current_revision(self) -> str | None:
        return migrate.current_revision(self.engine)

    # -- writes -------------------------------------------------------------------------------------

    def write_batch(
        self,
        events: Sequence[Incoming],
        *,
        now: datetime | None = None,
        report: WriteReport | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> list[Outcome]:
        return writer.write_batch(self.engine, events, now=now, report=report, project=project)

    def write_spans(self, spans: Sequence[SpanRecord], now: datetime, *, project: str = DEFAULT_PROJECT) -> Written:
        return otlp_write.write_spans(self.engine, spans, now, project=project)

    def probe_write(self) -> None:
        writer.probe_write(self.engine)

    # -- reads --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reader(self, should_stop: ShouldStop | None = None) -> Iterator[Reader]:
        with self.engine.connect() as conn:
            session = SqlReader(conn)
            sqlite = self.engine.dialect.name == SQLITE
            if sqlite and should_stop is not None:
                stop = should_stop

                def interrupt() -> bool:
                    return session._cancelled or stop()

                session._dbapi.set_progress_handler(interrupt, PROGRESS_EVERY)
            try:
                if should_stop is not None and should_stop():
                    raise Stopped()
                yield session
            finally:
                session._release()
                if sqlite and should_stop is not None:
                    conn.connection.dbapi_connection.set_progress_handler(None, PROGRESS_EVERY)  # type: ignore[union-attr]

    def ping(self) -> None:
        with self.engine.connect() as conn:
            runs.ping(conn)

    # -- errors -------------------------------------------------------------------------------------

    def is_unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, UNAVAILABLE)

    def is_timeout(self, exc: BaseException) -> bool:
        return timed_out(exc)

    def cannot_write(self, exc: BaseException) -> bool:
        if isinstance(exc, UNAVAILABLE):
            return True
        sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
        return sqlstate.startswith(_CANNOT_WRITE_SQLSTATES)

    # -- keys and projects --------------------------------------------------------------------------

    def create_key(
        self, scope: str, name: str | None = None, *, projects: Sequence[str] = (DEFAULT_PROJECT,),
        admin: bool = False,
    ) -> tuple[KeyInfo, str]:
        return key_rows.create_key(self.engine, scope, name, projects=projects, admin=admin)

    def list_keys(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        return key_rows.list_keys(self.engine, include_revoked=include_revoked)

    def revoke_key(self, key_id: str) -> bool:
        return key_rows.revoke_key(self.engine, key_id)

    def create_project(self, slug: str, retention_days: int | None = None) -> ProjectInfo:
        return project_rows.create_project(self.engine, slug, retention_days)

    def set_retention(self, slug: str, retention_days: int | None) -> bool:
        return project_rows.set_retention(self.engine, slug, retention_days)

    def delete_project(self, slug: str) -> Deleted | None:
        return retention.delete_project(self.engine, slug)

    # -- jobs ---------------------------------------------------------------------------------------

    def prune(
        self,
        older_than: timedelta,
        *,
        batch_size: int | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
        should_stop: ShouldStop = lambda: False,
        project: str | None = None,
    ) -> PruneResult:
        return retention.prune(self.engine, older_than, dry_run=dry_run, now=now, should_stop=should_stop,
                               project=project,
                               batch_size=retention.DEFAULT_BATCH_SIZE if batch_size is None else batch_size)

    def sweep(
        self, timeout: timedelta, *, now: datetime | None = None, max_batches: int | None = None,
        should_stop: ShouldStop = lambda: False,
    ) -> SweepResult:
        return abandon.sweep(self.engine, timeout, now=now, should_stop=should_stop,
                             max_batches=abandon.MAX_BATCHES if max_batches is None else max_batches)

    def refresh_rollups(
        self, *, settle: timedelta | None = None, rebuild: bool = False, now: datetime | None = None,
        should_stop: ShouldStop = lambda: False,
    ) -> RefreshResult:
        return refresh.refresh(self.engine, now=now, rebuild=rebuild, should_stop=should_stop,
                               settle=refresh.DEFAULT_SETTLE if settle is None else settle)

    def start_workers(
        self,
        *,
        retention_days: int | None,
        rollup_interval_s: float,
        rollup_settle_s: float,
        rollup_live_interval_s: float,
        run_timeout_s: int,
    ) -> Workers:
        # Each worker on an engine of its own: its passes never take a connection an API request needs.
        workers = Workers()

        def engine() -> sa.Engine:
            own = make_engine(self.url)
            workers.closers.append(own.dispose)
            return own

        workers.retention = retention.start_retention(engine(), retention_days)
        workers.rollup = live.start_rollup(engine(), rollup_interval_s, rollup_settle_s, rollup_live_interval_s)
        if run_timeout_s:
            workers.sweep = abandon.start_sweep(engine(), run_timeout_s)
        return workers

    def transfer(self) -> Transfer:
        return SqlTransfer(self.engine)

    def close(self) -> None:
        self.engine.dispose()
