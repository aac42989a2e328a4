"""``GET /health`` reports database reachability; with the database down — or the server saturated —
ingest answers 503 with Retry-After (the batch was not stored and can be retried), never a 500."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from agenttracer.server import ingest
from agenttracer.server.ingest import create_app
from agenttracer.server.settings import Settings
from tests.support.events import full_run
from tests.support.servers import free_port, serve_app


def test_health_is_ok_when_the_database_answers(live_ingest: str, live_query: str, backend: str) -> None:
    resp = httpx.get(f"{live_ingest}/health", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "service": "ingest", "database": "ok", "backend": backend, "detail": None}
    # One probe fits both servers: the Query API answers in the same shape.
    query = httpx.get(f"{live_query}/health", timeout=10).json()
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


def test_batches_beyond_the_concurrency_limit_wait_then_get_503(
    monkeypatch: pytest.MonkeyPatch, live_settings: Settings
) -> None:
    monkeypatch.setattr(ingest, "MAX_CONCURRENT_BATCHES", 1)
    monkeypatch.setattr(ingest, "BUSY_WAIT_SECONDS", 0.3)
    body = orjson.dumps({"events": full_run()})
    first_chunk_sent, release = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield body[:10]
        first_chunk_sent.set()
        release.wait(10)
        yield body[10:]

    answers: list[httpx.Response] = []
    with serve_app(ingest.create_app(live_settings)) as base:
        sender = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{base}/v1/ingest", content=slow_body(), headers={"content-type": "application/json"})
            )
        )
        sender.start()
        assert first_chunk_sent.wait(10)
        time.sleep(0.1)  # the first batch now holds the only slot while its body trickles in
        busy = httpx.post(f"{base}/v1/ingest", json={"events": full_run()}, timeout=10)
        release.set()
        sender.join(10)
    assert busy.status_code == 503 and busy.json()["error"] == "server_busy"
    assert int(busy.headers["retry-after"]) > 0
    assert answers and answers[0].status_code == 200 and answers[0].json()["accepted"] == 5
