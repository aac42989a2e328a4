"""``GET /health`` reports database reachability; with the database down, ingest answers 503 with
Retry-After (the batch was not stored and can be retried) instead of failing with a 500."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from agenttracer.server.ingest import create_app
from agenttracer.server.settings import Settings
from tests.support.events import full_run
from tests.support.servers import free_port, serve_app


def test_health_is_ok_when_the_database_answers(live_ingest: str) -> None:
    resp = httpx.get(f"{live_ingest}/health", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "service": "ingest", "database": "ok"}


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
        assert int(health.headers["retry-after"]) > 0

        resp = httpx.post(f"{base}/v1/ingest", json={"events": full_run()}, timeout=10)
        assert resp.status_code == 503, resp.text
        assert int(resp.headers["retry-after"]) > 0
        body = resp.json()
        assert body["error"] == "database_unavailable" and body["field"] == "database"
        assert "postgres@" not in resp.text and "not-a-database" not in resp.text
