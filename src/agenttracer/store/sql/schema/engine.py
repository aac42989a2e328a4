"""Database engines for SQLite (the zero-set-up default) and PostgreSQL.

``make_engine(url)`` gives the read-write engine the ingest side uses; ``make_engine(url,
readonly=True)`` gives the engine the Query API uses, which the database itself refuses to write
through (SQLite opened with ``mode=ro``, PostgreSQL sessions with ``default_transaction_read_only``).

``statement_timeout_ms`` bounds the time the database works for one reader: on PostgreSQL every
statement gets ``statement_timeout`` (a connect option, so no extra round trip per request); on SQLite a
progress handler interrupts the connection once that much time has passed since it was checked out of
the pool (one request holds one connection), checked every few thousand virtual-machine instructions,
also while rows are being fetched. Either way the database raises an error that ``timed_out`` recognises.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from agenttracer.store.sql.dialect import POSTGRESQL, SQLITE

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Without a bound, a PostgreSQL host that drops packets hangs `up`, `migrate` and every request for
# the kernel's TCP timeout (minutes); a URL's own ?connect_timeout= wins over this.
PG_CONNECT_TIMEOUT_S = 10
# SQLite calls the progress handler every this many virtual-machine instructions (~0.1 ms of work).
_PROGRESS_EVERY = 2_000
_QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout


def timed_out(exc: BaseException) -> bool:
    """Whether a database error is the statement timeout of ``make_engine(statement_timeout_ms=...)``."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) == _QUERY_CANCELED:
        return True
    # sqlite3 reports a progress-handler abort as OperationalError('interrupted').
    return type(orig).__module__ == "sqlite3" and str(orig) == "interrupted"


def normalize_url(url: str) -> sa.URL:
    """Accept the URLs users write (``postgresql://``, ``postgres://``) and pick our drivers."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.get_backend_name() == POSTGRESQL and parsed.get_driver_name() in ("", POSTGRESQL):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_path(url: sa.URL) -> Path | None:
    db = url.database
    if not db or db == ":memory:":
        return None
    return Path(db)


def json_text(value: Any) -> str:
    """How JSON columns (metadata) are written: compact orjson text, several times cheaper than the
    standard library's encoder on the ingest path. Anything orjson refuses (a non-string key, an
    integer beyond 64 bits) falls back to the standard library, so no value that encoded before
    fails now."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def make_engine(
    url: str, *, readonly: bool = False, wal_autocheckpoint: int | None = None, statement_timeout_ms: int = 0,
    **kwargs: Any,
) -> sa.Engine:
    """An engine for ``url``. ``wal_autocheckpoint`` (SQLite, read-write only) sets SQLite's
    automatic checkpoint threshold in pages; the Ingest API raises it and checkpoints itself
    (``store/sql/write/sqlite_checkpoint.py``). ``statement_timeout_ms`` (0: none) bounds the database's work per
    statement (PostgreSQL) or per checked-out connection (SQLite); see the module docstring."""
    kwargs.setdefault("json_serializer", json_text)
    # A failed statement's error must never carry its bound parameters (stored values) into a log line
    # or an answer: SQLAlchemy appends them to the message unless told not to.
    kwargs.setdefault("hide_parameters", True)
    parsed = normalize_url(url)
    if parsed.get_backend_name() == SQLITE:
        engine = _sqlite_engine(parsed, readonly=readonly, wal_autocheckpoint=wal_autocheckpoint, **kwargs)
        if statement_timeout_ms > 0:
            _sqlite_deadline(engine, statement_timeout_ms)
        return engine
    if parsed.get_backend_name() == POSTGRESQL:
        connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
        if "connect_timeout" not in parsed.query:
            connect_args.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
        extra = ["-c default_transaction_read_only=on"] if readonly else []
        if statement_timeout_ms > 0:
            extra.append(f"-c statement_timeout={int(statement_timeout_ms)}")
        if extra:
            options = connect_args.get("options", parsed.query.get("options", ""))
            if isinstance(options, tuple):
                options = " ".join(options)
            connect_args["options"] = " ".join([options, *extra]).strip()
            parsed = parsed.difference_update_query(["options"])
        kwargs.setdefault("pool_pre_ping", True)
        if "poolclass" not in kwargs:
            kwargs.setdefault("pool_size", 10)
        return sa.create_engine(parsed, connect_args=connect_args, **kwargs)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://")


def _sqlite_engine(url: sa.URL, *, readonly: bool, wal_autocheckpoint: int | None, **kwargs: Any) -> sa.Engine:
    path = sqlite_path(url)
    # cached_statements: the writer's statements are cached per row count (store/sql/write/sql.py).
    connect_args: dict[str, Any] = {
        "check_same_thread": False,
        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        "cached_statements": 512,
    }
    if path is not None and not readonly:
        path.parent.mkdir(parents=True, exist_ok=True)
    if readonly:
        if path is None:
            raise ValueError("a read-only engine needs a SQLite file, not an in-memory database")
        # The ``mode=ro`` URI makes SQLite itself refuse every write on this connection.
        url = sa.URL.create("sqlite", database=f"file:{path.resolve().as_posix()}?mode=ro", query={"uri": "true"})
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if not readonly:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            if wal_autocheckpoint is not None:
                cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


def _sqlite_deadline(engine: sa.Engine, timeout_ms: int) -> None:
    """Interrupt a SQLite connection's work once ``timeout_ms`` passed since its checkout."""
    limit = timeout_ms / 1000

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        deadline = time.monotonic() + limit
        dbapi_conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_EVERY)

    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn is not None:
            dbapi_conn.set_progress_handler(None, _PROGRESS_EVERY)
