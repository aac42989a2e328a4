"""A read-only view of a ClickHouse connection: what ``OpenOptions.readonly`` means on ClickHouse.

Every statement carries the ``readonly = 2`` setting, so the database itself refuses an INSERT, DELETE,
ALTER or DDL sent through it (error 164, READONLY) — the Query API's store cannot write even by mistake,
and the ingest app's write probe on such a store reports "not writable" — while reads keep setting their
own limits (``max_execution_time``), which ``readonly = 1`` would forbid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agenttracer.store.clickhouse.connection import Connection, Params, Result, Settings

READ_ONLY: dict[str, Any] = {"readonly": 2}


class ReadOnly:
    """``conn`` with ``readonly = 2`` on every statement (a ``Connection``)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.url = conn.url
        self.database = conn.database

    def command(self, sql: str, params: Params = None, settings: Settings = None) -> None:
        self._conn.command(sql, params, {**(settings or {}), **READ_ONLY})

    def query(self, sql: str, params: Params = None, settings: Settings = None) -> Result:
        return self._conn.query(sql, params, {**(settings or {}), **READ_ONLY})

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        token: str | None = None,
        settings: Settings = None,
    ) -> None:
        self._conn.insert(table, columns, rows, token=token, settings={**(settings or {}), **READ_ONLY})

    def close(self) -> None:
        self._conn.close()
