"""Database fixtures: every storage test runs on SQLite and on the real PostgreSQL; the tests that reach
storage through the store interface also run on ClickHouse, embedded through chdb.

PostgreSQL is found at ``AGENTTRACER_TEST_PG_URL`` (default: the local server, database ``test``).
Each test gets its own schema, so parallel runs and parallel sessions never see each other's rows.
chdb binds one embedded server to one directory per process (store/clickhouse/connection.py), so a
pytest process keeps one chdb directory for the whole session and each test gets a fresh database in
it (``chdb:///dir?database=at_test_<hex>``), dropped afterwards.
When PostgreSQL cannot be reached the tests that need it skip with a clear message — unless
``AGENTTRACER_TEST_STRICT=1`` (set by .ci/run), where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.interface import Store
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
# Every store: the SQL ones and ClickHouse (embedded). For tests that go through the store interface.
STORE_BACKENDS = (*BACKENDS, "chdb")


def strict() -> bool:
    """True in CI: a missing real dependency (PostgreSQL, Chromium) fails instead of skipping."""
    return os.environ.get("AGENTTRACER_TEST_STRICT", "") not in ("", "0")


def missing(reason: str) -> None:
    """Skip (on a laptop) or fail (in CI) because a real dependency is not there."""
    if strict():
        pytest.fail(f"{reason} (AGENTTRACER_TEST_STRICT=1 turns this skip into a failure)")
    pytest.skip(reason)


def pg_base_url() -> str:
    return os.environ.get("AGENTTRACER_TEST_PG_URL", DEFAULT_PG_URL)


_pg_error: str | None = None
_pg_checked = False


def _pg_reachable() -> bool:
    global _pg_error, _pg_checked
    if not _pg_checked:
        _pg_checked = True
        try:
            engine = make_engine(pg_base_url(), poolclass=sa.pool.NullPool)
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
            engine.dispose()
        except Exception as exc:
            _pg_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return _pg_error is None


def new_pg_schema_url() -> tuple[str, str]:
    """Create a fresh schema on the test server; return (url bound to it, schema name)."""
    if not _pg_reachable():
        missing(f"PostgreSQL is not reachable at {pg_base_url()} ({_pg_error}); set AGENTTRACER_TEST_PG_URL")
    schema = f"at_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(pg_base_url(), poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in pg_base_url() else "?"
    return f"{pg_base_url()}{sep}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(schema: str) -> None:
    admin = make_engine(pg_base_url(), poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over both databases: ``sqlite`` and ``postgresql``."""
    return str(request.param)


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty database (no tables) on the chosen backend."""
    if backend == "sqlite":
        yield f"sqlite:///{(tmp_path / 'agenttracer.db').as_posix()}"
        return
    url, schema = new_pg_schema_url()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A URL for a freshly migrated database on the chosen backend."""
    engine = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    upgrade(engine)
    engine.dispose()
    return empty_db_url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """A read-write engine on a freshly migrated database."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


class WriteLock:
    """Holds the database's write lock (SQLite) or an exclusive lock on ``runs`` (PostgreSQL) from
    construction until ``release()``, so a test can keep a writer waiting inside its write."""

    def __init__(self, db_url: str) -> None:
        self.engine = make_engine(db_url, poolclass=sa.pool.NullPool)
        self.conn: sa.Connection | None = self.engine.connect()
        if self.engine.dialect.name == "sqlite":
            self.conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            self.conn.begin()
            self.conn.exec_driver_sql("LOCK TABLE runs IN EXCLUSIVE MODE")

    def release(self) -> None:
        """Let the waiting writers go (a second call does nothing)."""
        if self.conn is None:
            return
        if self.engine.dialect.name == "sqlite":
            self.conn.exec_driver_sql("ROLLBACK")
        else:
            self.conn.rollback()
        self.conn.close()
        self.conn = None
        self.engine.dispose()


_chdb_dir: Path | None = None


def chdb_dir() -> Path:
    """This pytest process's chdb directory (one per process: chdb cannot switch directories)."""
    global _chdb_dir
    if _chdb_dir is None:
        import tempfile

        _chdb_dir = Path(tempfile.mkdtemp(prefix="agenttracer-chdb-"))
    return _chdb_dir


def new_chdb_url() -> str:
    """A URL naming a fresh, empty database in this process's chdb directory (created on first connect)."""
    return f"chdb://{chdb_dir().as_posix()}?database=at_test_{uuid.uuid4().hex[:12]}"


def drop_chdb_database(url: str) -> None:
    from agenttracer.store.clickhouse.connection import connect

    conn = connect(url)
    try:
        conn.command(f"DROP DATABASE IF EXISTS {conn.database} SYNC")
    finally:
        conn.close()


@pytest.fixture
def empty_chdb_url() -> Iterator[str]:
    """A URL for an empty ClickHouse database (embedded, chdb), dropped after the test."""
    url = new_chdb_url()
    try:
        yield url
    finally:
        drop_chdb_database(url)


@pytest.fixture
def chdb_url(empty_chdb_url: str) -> str:
    """A URL for a freshly migrated ClickHouse database (embedded, chdb)."""
    from agenttracer.store.clickhouse.connection import connect
    from agenttracer.store.clickhouse.schema.migrate import upgrade as ch_upgrade

    conn = connect(empty_chdb_url)
    try:
        ch_upgrade(conn)
    finally:
        conn.close()
    return empty_chdb_url


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over every store: ``sqlite``, ``postgresql`` and ``chdb`` (ClickHouse, embedded)."""
    return str(request.param)


@pytest.fixture
def empty_store_url(store_backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty database (no tables) on the chosen store."""
    if store_backend == "sqlite":
        yield f"sqlite:///{(tmp_path / 'agenttracer.db').as_posix()}"
    elif store_backend == "postgresql":
        url, schema = new_pg_schema_url()
        try:
            yield url
        finally:
            drop_pg_schema(schema)
    else:
        url = new_chdb_url()
        try:
            yield url
        finally:
            drop_chdb_database(url)


@pytest.fixture
def store_url(empty_store_url: str) -> str:
    """A URL for a freshly migrated database on the chosen store."""
    from agenttracer.store import open_store

    opened = open_store(empty_store_url)
    try:
        opened.migrate()
    finally:
        opened.close()
    return empty_store_url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store (read-write) on a freshly migrated database of the chosen backend."""
    from agenttracer.store import open_store

    opened = open_store(store_url)
    yield opened
    opened.close()


def sql_rows(db_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    """The rows of one SQL statement on a SQLite or PostgreSQL database, for tests of SQL-only behaviour."""
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]
    finally:
        engine.dispose()


def sql_counts(db_url: str) -> dict[str, int]:
    """How many runs, steps and failures a SQLite or PostgreSQL database holds."""
    return {t: int(sql_rows(db_url, f"SELECT count(*) AS n FROM {t}")[0]["n"]) for t in ("runs", "steps", "failures")}
