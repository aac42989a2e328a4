"""A ClickHouse server (``clickhouse://``, ``clickhouses://``) through clickhouse-connect: a thin layer
sending the very SQL the embedded engine runs, with the same parameters, settings and insert bytes,
and decoding answers with the same reader (``decode.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agenttracer.store.clickhouse.decode import Result, columns_result
from agenttracer.store.clickhouse.errors import ClickHouseError
from agenttracer.store.clickhouse.sqltext import Params, Settings, insert_settings, rows_json, server_params

if TYPE_CHECKING:
    from agenttracer.store.clickhouse.connection import Target


class ServerConnection:
    """``connection.Connection`` on a server over HTTP."""

    def __init__(self, url: str, target: Target) -> None:
        import clickhouse_connect

        self.url = url
        self.database = target.database
        try:
            self._client = clickhouse_connect.get_client(
                host=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                secure=target.scheme == "clickhouses",
                # Several threads share a client; clickhouse-connect then needs no session id.
                autogenerate_session_id=False,
            )
            self._client.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            self._client.database = self.database
        except Exception as exc:
            raise ClickHouseError.from_driver(exc) from None

    def command(self, sql: str, params: Params = None, settings: Settings = None) -> None:
        try:
            self._client.command(sql, parameters=server_params(params), settings=dict(settings or {}))
        except Exception as exc:
            raise ClickHouseError.from_driver(exc) from None

    def query(self, sql: str, params: Params = None, settings: Settings = None) -> Result:
        try:
            result = self._client.query(sql, parameters=server_params(params), settings=dict(settings or {}),
                                        column_oriented=True)
            return columns_result(result.column_names, result.column_types, result.result_columns)
        except Exception as exc:
            raise ClickHouseError.from_driver(exc) from None

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
        try:
            self._client.raw_insert(table, list(columns), insert_block=rows_json(columns, rows),
                                    settings=insert_settings(token, settings), fmt="JSONCompactEachRow")
        except Exception as exc:
            raise ClickHouseError.from_driver(exc) from None

    def close(self) -> None:
        self._client.close()
