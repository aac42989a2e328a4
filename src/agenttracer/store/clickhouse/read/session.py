"""A read session on ClickHouse (``interface.Reader``): what one Query API job reads, bounded and stoppable.

Every statement of the session carries ``max_execution_time`` (the store's statement timeout), so the
engine itself stops a read that runs too long, and a marker comment naming the session, so that
``cancel`` — called from another thread when the request's deadline passes or its client leaves — can
stop the statement running now with ``KILL QUERY`` sent on a connection of its own (the same statement
works embedded in chdb, whose sessions on one directory share one engine, and on a server). A session
that was cancelled, or whose ``should_stop`` says so, runs no further statement.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from agenttracer.store.clickhouse import keys as key_rows
from agenttracer.store.clickhouse import projects as project_rows
from agenttracer.store.clickhouse.connection import Connection, Result, Settings
from agenttracer.store.clickhouse.connection import Params as ConnParams
from agenttracer.store.clickhouse.read import compare, runs, stats
from agenttracer.store.compare_result import Comparison
from agenttracer.store.cursors import Cursor
from agenttracer.store.filters import RunFilters
from agenttracer.store.interface import ShouldStop, Stopped
from agenttracer.store.keys import Verification
from agenttracer.store.projects import ProjectInfo
from agenttracer.store.results import RunStats

# A KILL QUERY is one short statement; past this the cancel is given up (the statement timeout still holds).
CANCEL_TIMEOUT_S = 2.0


class _Bounded:
    """The session's connection as the reads see it: each statement marked, timed out, and refused once
    the session is stopped."""

    def __init__(self, conn: Connection, marker: str, timeout_ms: int, stopped: Callable[[], bool]) -> None:
        self._conn = conn
        self._marker = marker
        self._settings: dict[str, Any] = {"max_execution_time": timeout_ms / 1000} if timeout_ms > 0 else {}
        self._stopped = stopped

    def query(self, sql: str, params: ConnParams = None, settings: Settings = None) -> Result:
        if self._stopped():
            raise Stopped()
        return self._conn.query(f"/* {self._marker} */ {sql}", params, {**self._settings, **(settings or {})})


class ClickHouseReader:
    """One read session (``interface.Reader``) on ``conn``; ``connect`` opens the extra connection a
    ``cancel`` sends its KILL QUERY on."""

    def __init__(self, conn: Connection, *, statement_timeout_ms: int = 0, should_stop: ShouldStop | None = None,
                 connect: Callable[[], Connection] | None = None) -> None:
        self.conn = conn
        self._should_stop = should_stop
        self._connect = connect
        self._cancelled = False
        self._marker = f"agenttracer-read:{uuid.uuid4().hex}"
        self._q = _Bounded(conn, self._marker, statement_timeout_ms, self._stopped)

    def _stopped(self) -> bool:
        return self._cancelled or (self._should_stop is not None and self._should_stop())

    # -- stopping ---------------------------------------------------------------------------------

    def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        if self._connect is not None:
            threading.Thread(target=self._kill, name="query-cancel", daemon=True).start()

    def _kill(self) -> None:
        assert self._connect is not None
        with contextlib.suppress(Exception):
            other = self._connect()
            try:
                # The marker is in the statement text only (not in this one's pattern twice): a LIKE that
                # matches itself would be harmless anyway, KILL skips its own query.
                other.command("KILL QUERY WHERE query LIKE {pattern:String} ASYNC",
                              {"pattern": f"%{self._marker}%"}, {"max_execution_time": CANCEL_TIMEOUT_S})
            finally:
                other.close()

    # -- reads ------------------------------------------------------------------------------------

    def list_runs(self, filters: RunFilters, *, limit: int,
                  cursor: Cursor | None = None) -> tuple[list[dict[str, Any]], Cursor | None]:
        return runs.list_runs(self._q, filters, limit=limit, cursor=cursor)

    def runs_with_prefix(self, prefix: str, limit: int, projects: tuple[str, ...] | None = None) -> list[str]:
        return runs.runs_with_prefix(self._q, prefix, limit, projects)

    def get_run(self, run_id: str, *, steps_after: int = 0, steps_limit: int,
                projects: tuple[str, ...] | None = None) -> dict[str, Any] | None:
        return runs.get_run(self._q, run_id, steps_after=steps_after, steps_limit=steps_limit, projects=projects)

    def list_agents(self, projects: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        return runs.list_agents(self._q, projects)

    def run_stats(self, filters: RunFilters, now: datetime | None = None) -> RunStats:
        return stats.run_stats(self._q, filters, now)

    def compare_versions(self, agent_id: str, base: str, candidate: str, environment: str | None = None,
                         since: datetime | None = None, until: datetime | None = None,
                         projects: tuple[str, ...] | None = None) -> Comparison:
        return compare.compare_versions(self._q, agent_id, base, candidate, environment, since, until, projects)

    def ping(self) -> None:
        runs.ping(self._q)

    # Keys and projects: small tables, read by store/clickhouse/keys.py and projects.py.

    def list_projects(self, only: frozenset[str] | None = None) -> list[ProjectInfo]:
        self._check()
        return project_rows.list_projects(self.conn, only)

    def project_slugs(self) -> tuple[str, ...]:
        self._check()
        return project_rows.project_slugs(self.conn)

    def verify_key(self, key: str) -> Verification:
        self._check()
        return key_rows.verify_key(self.conn, key)

    def any_key_exists(self) -> bool:
        self._check()
        return key_rows.any_key_exists(self.conn)

    def _check(self) -> None:
        if self._stopped():
            raise Stopped()
