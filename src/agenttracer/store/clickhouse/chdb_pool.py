"""The embedded engine (``chdb:///dir``): a small pool of chdb sessions on one directory.

chdb runs one embedded server per process and it is bound to the first directory opened: a second
directory in the same process is refused until every session on the first is closed, and a second
process cannot open a directory one process holds (the directory is locked). Several sessions on the
same directory coexist, each with its own current database, so every session of the pool is pinned
(``USE``) to the connection's database.

A chdb session must not run two statements at once: concurrent queries on one session bind each
other's parameters (measured on chdb 4.4: wrong answers, or "Substitution `x` is not set"). So each
statement takes a session of its own from the pool (at most ``POOL_SIZE``; a caller past that waits).
Answers come back in ``Native`` and are decoded by the reader the server driver uses (``decode.py``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agenttracer.store.clickhouse.decode import Result, native_result
from agenttracer.store.clickhouse.errors import ClickHouseError, ClickHouseUnavailable
from agenttracer.store.clickhouse.sqltext import Params, Settings, chdb_params, insert_sql, rows_json, settings_clause

if TYPE_CHECKING:
    from agenttracer.store.clickhouse.connection import Target


class ChdbConnection:
    """``connection.Connection`` on the engine inside this process."""

    POOL_SIZE = 8

    def __init__(self, url: str, target: Target) -> None:
        self.url = url
        self.database = target.database
        self._path = target.path
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._all: list[Any] = []
        self._slots = threading.BoundedSemaphore(self.POOL_SIZE)
        self._lock = threading.Lock()
        self._closed = False
        first = self._open()  # fail at connect time, not at the first statement
        self._idle.put(first)

    def _open(self) -> Any:
        from chdb import session

        try:
            opened = session.Session(self._path)
        except Exception as exc:
            raise ClickHouseUnavailable(
                f"cannot open the chdb directory {self._path}: another process holds it, or this process has"
                " another chdb directory open (one directory per process: serve both APIs with `agenttracer up`)"
                f" [{type(exc).__name__}]"
            ) from None
        try:
            opened.query(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            opened.query(f"USE {self.database}")
        except Exception as exc:
            opened.close()
            raise ClickHouseError.from_driver(exc) from None
        with self._lock:
            self._all.append(opened)
        return opened

    @contextmanager
    def _session(self) -> Iterator[Any]:
        if self._closed:
            raise ClickHouseError("the connection is closed")
        with self._slots:
            try:
                held = self._idle.get_nowait()
            except queue.Empty:
                held = self._open()
            try:
                yield held
            finally:
                self._idle.put(held)

    def _run(self, sql: str, fmt: str, params: Params) -> Any:
        text = chdb_params(params)
        with self._session() as held:
            try:
                return held.query(sql, fmt, params=text)
            except Exception as exc:
                raise ClickHouseError.from_driver(exc) from None

    def command(self, sql: str, params: Params = None, settings: Settings = None) -> None:
        self._run(sql + settings_clause(settings), "CSV", params)

    def query(self, sql: str, params: Params = None, settings: Settings = None) -> Result:
        raw = self._run(sql + settings_clause(settings) + " FORMAT Native", "Native", params).bytes()
        return native_result(raw)

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        token: str | None = None,
        settings: Settings = None,
    ) -> None:
        if not rows:
            return
        sql = insert_sql(table, columns, token, settings)
        self._run(sql + "\n" + rows_json(columns, rows).decode(), "CSV", None)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sessions, self._all = self._all, []
        for held in sessions:
            held.close()
