"""One small connection API over the two ways to reach ClickHouse: embedded (chdb) and a server.

``connect(url)`` takes

- ``chdb:///path/to/dir[?database=name]``: the engine inside this process (the ``chdb`` package), its
  data in ``dir``. chdb runs one embedded server per process and it is bound to the first directory
  opened: a second directory in the same process is refused until every session on the first is
  closed, and a second process cannot open a directory one process holds (the directory is locked).
  Several sessions on the same directory coexist, each with its own current database, and a session
  is safe to share between threads. So every ``Connection`` owns one session pinned (``USE``) to its
  database, and the tests run one directory per pytest process with one database per test.
- ``clickhouse://user:password@host:8123/db`` (``clickhouses://`` for TLS, port 8443 by default): a
  server over HTTP through ``clickhouse-connect``.

Both send the same SQL text: parameters are ClickHouse's own ``{name:Type}`` placeholders, bound by
the engine (never formatted into the text), settings are passed alongside, and rows are inserted as
``JSONEachRow`` (same bytes on both). Results come back as Python values: timestamps as aware UTC
datetimes, NULL as None, arrays as lists.

Errors of either driver are raised as ``ClickHouseError`` with the server's error ``code`` (0 when the
driver did not say), so callers classify them (timeout, unavailable) without importing a driver.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

CHDB_SCHEME = "chdb"
SERVER_SCHEMES = ("clickhouse", "clickhouses")
DEFAULT_DATABASE = "default"
_DATABASE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CODE_RE = re.compile(r"Code: (\d+)")

# ClickHouse error codes the store reacts to.
TIMEOUT_EXCEEDED = 159
QUERY_WAS_CANCELLED = 394
READONLY = 164
NOT_ENOUGH_SPACE = 243
TABLE_IS_READ_ONLY = 242
# "Not there right now, try again": no connection (no code), network, too many queries, out of memory,
# read-only or full (a replica in trouble, a full disk).
UNAVAILABLE_CODES = frozenset({0, 3, 202, 203, 209, 210, 241, 242, 243, 425, 999})
CANNOT_WRITE_CODES = frozenset({READONLY, TABLE_IS_READ_ONLY, NOT_ENOUGH_SPACE})


class ClickHouseError(Exception):
    """A statement failed; ``code`` is ClickHouse's error code (0: the driver gave none, e.g. no connection).
    The message is the driver's and may quote values of the statement: never log it."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code

    @staticmethod
    def from_driver(exc: BaseException) -> ClickHouseError:
        code = getattr(exc, "code", None)
        if not isinstance(code, int):
            match = _CODE_RE.search(str(exc))
            code = int(match.group(1)) if match else 0
        kind = ClickHouseUnavailable if code in UNAVAILABLE_CODES else ClickHouseError
        return kind(str(exc), code)


class ClickHouseUnavailable(ClickHouseError):
    """The database cannot answer right now (unreachable, overloaded, read-only, full): retry later."""


@dataclass(frozen=True)
class Result:
    """A query's answer: column names and rows of Python values."""

    column_names: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=True)) for row in self.rows]


Params = Mapping[str, Any] | None
Settings = Mapping[str, Any] | None


class Connection(Protocol):
    """What the store needs of ClickHouse; both implementations send the same SQL."""

    url: str
    database: str

    def command(self, sql: str, params: Params = None, settings: Settings = None) -> None:
        """Run a statement that returns nothing (DDL, DELETE, ALTER)."""

    def query(self, sql: str, params: Params = None, settings: Settings = None) -> Result:
        """Run a SELECT (no FORMAT clause) and return its rows."""

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
        return ChdbConnection(url, target)
    return ServerConnection(url, target)


def _settings_clause(settings: Settings) -> str:
    if not settings:
        return ""
    return " SETTINGS " + ", ".join(f"{name} = {_setting_literal(value)}" for name, value in settings.items())


def _setting_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _insert_sql(table: str, columns: Sequence[str], token: str | None, settings: Settings) -> str:
    merged = {**_INSERT_SETTINGS, **(settings or {})}
    if token is not None:
        merged["insert_deduplication_token"] = token
    return f"INSERT INTO {table} ({', '.join(columns)}){_settings_clause(merged)} FORMAT JSONEachRow"


# Timestamps go in as ISO 8601 text (orjson's form of an aware datetime).
_INSERT_SETTINGS: dict[str, Any] = {"date_time_input_format": "best_effort"}
# 64-bit integers as JSON numbers, NaN/inf as strings (plain JSON has no literal for them).
_CHDB_OUTPUT_SETTINGS: dict[str, Any] = {
    "output_format_json_quote_64bit_integers": 0,
    "output_format_json_quote_denormals": 1,
}


def _rows_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    return b"\n".join(orjson.dumps(dict(zip(columns, row, strict=True))) for row in rows)


class ChdbConnection:
    """The embedded engine: a small pool of chdb sessions on the directory, each pinned to the database.

    A chdb session must not run two statements at once: concurrent queries on one session bind each
    other's parameters (measured on chdb 4.4: wrong answers, or "Substitution `x` is not set"). So each
    statement takes a session of its own from the pool (at most ``POOL_SIZE``; a caller past that waits).
    """

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
        text = {name: _param_text(value) for name, value in params.items()} if params else None
        with self._session() as held:
            try:
                return held.query(sql, fmt, params=text)
            except Exception as exc:
                raise ClickHouseError.from_driver(exc) from None

    def command(self, sql: str, params: Params = None, settings: Settings = None) -> None:
        self._run(sql + _settings_clause(settings), "CSV", params)

    def query(self, sql: str, params: Params = None, settings: Settings = None) -> Result:
        merged = {**_CHDB_OUTPUT_SETTINGS, **(settings or {})}
        text = sql + _settings_clause(merged) + " FORMAT JSONCompactEachRowWithNamesAndTypes"
        raw = self._run(text, "JSONCompactEachRowWithNamesAndTypes", params).bytes()
        lines = raw.splitlines()
        if not lines:
            return Result((), [])
        names = tuple(orjson.loads(lines[0]))
        types = orjson.loads(lines[1])
        decoders = [_decoder(t) for t in types]
        rows = []
        for line in lines[2:]:
            values = orjson.loads(line)
            rows.append(tuple(decode(v) for decode, v in zip(decoders, values, strict=True)))
        return Result(names, rows)

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
        sql = _insert_sql(table, columns, token, settings)
        self._run(sql + "\n" + _rows_json(columns, rows).decode(), "CSV", None)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sessions, self._all = self._all, []
        for held in sessions:
            held.close()


def _utc_text(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _server_param(value: Any) -> Any:
    """clickhouse-connect binds Python values itself; timestamps go as UTC text with microseconds."""
    if isinstance(value, datetime):
        return _utc_text(value)
    return value


def _param_text(value: Any) -> str:
    """A query parameter in ClickHouse's text form (chdb hands the engine text, not Python values)."""
    if value is None:
        return "\\N"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _utc_text(value)
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return str(value)


def _quoted(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (str, datetime)):
        text = _utc_text(value) if isinstance(value, datetime) else value
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return _param_text(value)


class ServerConnection:
    """A ClickHouse server over HTTP (clickhouse-connect); the same SQL as ``ChdbConnection``."""

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
            self._client.command(sql, parameters=_server_params(params), settings=dict(settings or {}))
        except Exception as exc:
            raise ClickHouseError.from_driver(exc) from None

    def query(self, sql: str, params: Params = None, settings: Settings = None) -> Result:
        try:
            result = self._client.query(sql, parameters=_server_params(params), settings=dict(settings or {}))
        except Exception as exc:
            raise ClickHouseError.from_driver(exc) from None
        return Result(tuple(result.column_names), [tuple(_server_value(v) for v in row) for row in result.result_rows])

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
        merged = {**_INSERT_SETTINGS, **(settings or {})}
        if token is not None:
            merged["insert_deduplication_token"] = token
        try:
            self._client.raw_insert(
                table, list(columns), insert_block=_rows_json(columns, rows), settings=merged, fmt="JSONEachRow"
            )
        except Exception as exc:
            raise ClickHouseError.from_driver(exc) from None

    def close(self) -> None:
        self._client.close()


def _server_params(params: Params) -> dict[str, Any] | None:
    return {name: _server_param(value) for name, value in params.items()} if params else None


def _server_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, list):
        return [_server_value(v) for v in value]
    return value


# --- Decoding chdb's JSON rows into the Python values clickhouse-connect returns.

Decoder = Any  # Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, str) else value  # "nan", "inf", "-inf"


def _datetime(value: Any) -> Any:
    if value is None:
        return None
    text = value if "." in value else value + ".000000"
    return datetime.strptime(text[:26], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)


def _date(value: Any) -> Any:
    return None if value is None else date.fromisoformat(value)


def _decoder(type_name: str) -> Decoder:
    for wrapper in ("Nullable(", "LowCardinality("):
        if type_name.startswith(wrapper):
            inner = _decoder(type_name[len(wrapper) : -1])
            return lambda v: None if v is None else inner(v)
    if type_name.startswith("Array("):
        item = _decoder(type_name[6:-1])
        return lambda v: [item(x) for x in v]
    if type_name.startswith("DateTime"):
        return _datetime
    if type_name.startswith("Date"):
        return _date
    if type_name.startswith("Float"):
        return _float
    if type_name == "Bool":
        return bool
    return _identity
