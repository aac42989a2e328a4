"""One small connection API over the two ways to reach ClickHouse: embedded (chdb) and a server.

``connect(url)`` takes

- ``chdb:///path/to/dir[?database=name]``: the engine inside this process (the ``chdb`` package), its
  data in ``dir`` (``chdb_pool.py``: one directory per process, a pool of sessions on it);
- ``clickhouse://user:password@host:8123/db`` (``clickhouses://`` for TLS, port 8443 by default): a
  server over HTTP through ``clickhouse-connect`` (``server.py``).

Both send the same SQL text: parameters are ClickHouse's own ``{name:Type}`` placeholders, bound by
the engine (never formatted into the text), settings are passed alongside, and rows are inserted as
``JSONCompactEachRow`` (``sqltext.py``). Answers come back through one decoder (``decode.py``) as the same
Python values: timestamps as aware UTC datetimes, NULL as None, arrays as lists, Decimals exact.

Errors of either driver are raised as ``ClickHouseError`` with the server's error ``code``
(``errors.py``), so callers classify them (timeout, unavailable) without importing a driver.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from agenttracer.store.clickhouse.decode import Result
from agenttracer.store.clickhouse.errors import (
    CANNOT_WRITE_CODES,
    QUERY_WAS_CANCELLED,
    TIMEOUT_EXCEEDED,
    UNAVAILABLE_CODES,
    ClickHouseError,
    ClickHouseUnavailable,
)
from agenttracer.store.clickhouse.sqltext import Params, Settings

__all__ = [
    "CANNOT_WRITE_CODES", "CHDB_SCHEME", "DEFAULT_DATABASE", "QUERY_WAS_CANCELLED", "SERVER_SCHEMES",
    "TIMEOUT_EXCEEDED", "UNAVAILABLE_CODES", "ClickHouseError", "ClickHouseUnavailable", "Connection", "Params",
    "Result", "Settings", "Target", "connect", "parse_url",
]

CHDB_SCHEME = "chdb"
SERVER_SCHEMES = ("clickhouse", "clickhouses")
DEFAULT_DATABASE = "default"
_DATABASE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Connection(Protocol):
    """What the store needs of ClickHouse; both implementations send the same SQL."""

    url: str
    database: str

    def command(self, sql: str, params: Params = None, settings: Settings = None) -> None:
        """Run a statement that returns nothing (DDL, DELETE, ALTER)."""

    def query(self, sql: str, params: Params = None, settings: Settings = None) -> Result:
        """Run a SELECT (no FORMAT clause) and return its rows: the one way every reader fetches."""

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        token: str | None = None,
        settings: Settings = None,
    ) -> None:
        """Insert ``rows`` synchronously: stored when this returns. ``token`` is the insert's
        deduplication token: the same insert again with the same token is dropped by the table."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """A parsed store URL."""

    scheme: str
    database: str
    path: str = ""  # chdb: the data directory
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = ""


def parse_url(url: str) -> Target:
    """Read a ``chdb://`` or ``clickhouse(s)://`` URL; ValueError naming what is wrong."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == CHDB_SCHEME:
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError("a chdb URL names an absolute directory: chdb:///path/to/dir")
        database = query.get("database", [DEFAULT_DATABASE])[0]
        _check_database(database)
        return Target(CHDB_SCHEME, database, path=unquote(parts.path))
    if parts.scheme in SERVER_SCHEMES:
        if not parts.hostname:
            raise ValueError("a clickhouse URL names a host: clickhouse://user:password@host:8123/db")
        database = unquote(parts.path.strip("/")) or DEFAULT_DATABASE
        _check_database(database)
        secure = parts.scheme == "clickhouses"
        return Target(
            parts.scheme,
            database,
            host=parts.hostname,
            port=parts.port or (8443 if secure else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
        )
    raise ValueError(f"not a ClickHouse URL (scheme {parts.scheme!r}): use chdb:///dir or clickhouse://host:8123/db")


def _check_database(name: str) -> None:
    if not _DATABASE_RE.fullmatch(name):
        raise ValueError("database: letters, digits and '_', not starting with a digit, at most 63 characters")


def connect(url: str) -> Connection:
    """Open a connection to the database ``url`` names, creating the database if it does not exist."""
    target = parse_url(url)
    if target.scheme == CHDB_SCHEME:
        from agenttracer.store.clickhouse.chdb_pool import ChdbConnection

        return ChdbConnection(url, target)
    from agenttracer.store.clickhouse.server import ServerConnection

    return ServerConnection(url, target)
