"""``GET /health`` reports database reachability; with the database down — or the server saturated —
ingest answers 503 with Retry-After (the batch was not stored and can be retried), never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from agenttracer.server.ingest import create_app
from agenttracer.server.query import create_app as query_app
from agenttracer.server.settings import Settings
from agenttracer.store import open_store
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from agenttracer.store.sql.schema.tables import rollup_dirty
from agenttracer.store.sql.store import SqlStore
from tests.support.events import full_run
from tests.support.servers import free_port, serve_app


def reported(store_backend: str) -> str:
    """The ``backend`` health names: the store's kind (chdb is the ClickHouse store, embedded)."""
    return "clickhouse" if store_backend == "chdb" else store_backend


def test_health_is_ok_when_the_database_answers(store_url: str, store_backend: str) -> None:
    settings = Settings(database_url=store_url)
    with serve_app(create_app(settings)) as live_ingest, serve_app(query_app(settings)) as live_query:
        resp = httpx.get(f"{live_ingest}/health", timeout=10)
        query = httpx.get(f"{live_query}/health", timeout=10).json()
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "service": "ingest", "database": "ok", "backend": reported(store_backend),
                           "detail": None}
    # One probe fits both servers: the Query API answers in the same shape.
    assert set(query) == set(resp.json()) and query["service"] == "query"


def _unreachable_url(kind: str, tmp_path: Path) -> str:
    if kind == "postgresql":
        return f"postgresql://postgres@127.0.0.1:{free_port()}/test"  # nothing listens there
    blocked = tmp_path / "not-a-database"
    blocked.mkdir()  # a directory where the database file should be: SQLite cannot open it
    return f"sqlite:///{blocked.as_posix()}"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_database_down_gives_503_with_retry_after(kind: str, tmp_path: Path) -> None:
    app = create_app(Settings(database_url=_unreachable_url(kind, tmp_path)))
    with serve_app(app) as base:
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["database"] == "unreachable"
        assert health.json()["backend"] == kind
        assert health.json()["detail"] == "OperationalError"  # the kind of error, never the URL
        assert int(health.headers["retry-after"]) > 0

        resp = httpx.post(f"{base}/v1/ingest", json={"events": full_run()}, timeout=10)
        assert resp.status_code == 503, resp.text
        assert int(resp.headers["retry-after"]) > 0
        body = resp.json()
        assert body["error"] == "database_unavailable" and body["field"] == "database"
        assert "postgres@" not in resp.text and "not-a-database" not in resp.text


def test_health_is_503_when_the_database_refuses_writes(store_url: str, store_backend: str) -> None:
    """A database that answers reads but refuses writes (SQLite opened read-only, a PostgreSQL session in
    read-only mode, ClickHouse sessions with ``readonly``) cannot take a single batch: health says so
    instead of "ok"."""
    app = create_app(Settings(database_url=store_url), store=open_store(store_url, readonly=True))
    with serve_app(app) as base:
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 503, health.text
        assert health.json()["database"] == "not_writable"
        assert health.json()["status"] == "unavailable" and health.json()["backend"] == reported(store_backend)
        assert "refuses writes" in health.json()["detail"]
        assert int(health.headers["retry-after"]) > 0
        batch = httpx.post(f"{base}/v1/ingest", json={"events": full_run()}, timeout=10)
        assert batch.status_code == 503, batch.text
        # Now the last write's own failure is reported, with its age.
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 503 and "the last batch write failed" in health.json()["detail"]


def test_health_probe_writes_nothing(live_ingest: str, db_url: str) -> None:
    for _ in range(3):
        assert httpx.get(f"{live_ingest}/health", timeout=10).status_code == 200
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rollup_dirty)).scalar() == 0
    engine.dispose()


def test_health_stays_503_on_a_full_disk_until_a_batch_is_stored(tmp_path: Path) -> None:
    """A full disk (SQLite's max_page_count caps the file at its current size) fails the batches that need new
    pages but not the rolled-back probe: health must keep saying not_writable, however long ago the failure
    was, until a batch is stored again."""
    url = f"sqlite:///{(tmp_path / 'full.db').as_posix()}"
    upgrade_engine = make_engine(url)
    upgrade(upgrade_engine)
    upgrade_engine.dispose()
    cap: list[int | None] = [None]
    engine = make_engine(url, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "connect")
    def _cap(dbapi_conn: Any, _record: Any) -> None:
        if cap[0] is not None:
            dbapi_conn.execute(f"PRAGMA max_page_count = {cap[0]}")

    with engine.connect() as conn:
        cap[0] = int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 0)
    big = [*full_run(steps=400)]
    with serve_app(create_app(Settings(database_url=url), store=SqlStore(engine))) as base:
        failed = httpx.post(f"{base}/v1/ingest", json={"events": big}, timeout=30)
        assert failed.status_code == 503, failed.text
        # The rolled-back probe still passes on this disk: only the remembered failure (no time limit) says so.
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 503 and health.json()["database"] == "not_writable", health.text
        assert "none has been stored since" in health.json()["detail"]
        cap[0] = None  # room again
        assert httpx.post(f"{base}/v1/ingest", json={"events": big}, timeout=30).status_code == 200
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
