"""The read gate (``server/query/gate.py``) over real HTTP on SQLite, PostgreSQL and ClickHouse (chdb): a full
queue is a fast 503 with Retry-After, a request's deadline stops its database work and answers it, a client that leaves
stops its work, and a worker freed that way serves the next request at once."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import Request

from agenttracer.server.query import create_app
from agenttracer.server.query.gate import Job, ReadGate, limits
from agenttracer.server.settings import Settings
from agenttracer.store.interface import Reader, Store
from tests.support.rundata import T0, RunSpec, insert_runs
from tests.support.servers import serve_app

WAIT_S = 20.0  # a generous bound on hand-offs; never slept for when all is well
# Runs enough that a three-way join of them never ends on its own within any test's time.
RUNS = 400
ENDLESS = sa.text("SELECT count(*) FROM runs a, runs b, runs c WHERE a.step_count + b.step_count + c.step_count > 3")
# ClickHouse: an endless stream of numbers, summed.
ENDLESS_CLICKHOUSE = "SELECT sum(number) FROM system.numbers"


@pytest.fixture
def runs_db(store_url: str) -> str:
    insert_runs(store_url, [RunSpec("agent", "v1", "prod", T0 + timedelta(seconds=i), "success")
                            for i in range(RUNS)])
    return store_url


def _endless_read(reader: Reader) -> int:
    """A statement that never ends on its own, sent on the read session as the store's own reads are."""
    conn: Any = reader.conn  # type: ignore[attr-defined]
    if isinstance(conn, sa.Connection):  # the SQL store's session: its connection
        return int(conn.execute(ENDLESS).scalar_one())
    # The ClickHouse session's bounded connection: each statement marked (so cancel() can kill it) and timed.
    bounded: Any = reader._q  # type: ignore[attr-defined]
    return int(bounded.query(ENDLESS_CLICKHOUSE).rows[0][0])


class Endless:
    """A read that only ends when stopped; records how it ended."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.ended = threading.Event()
        self.stopped_by_database = False
        self.store: Store | None = None  # the app's store, which classifies the error

    def __call__(self, job: Job[int]) -> int:
        with job.reader() as reader:
            self.started.set()
            try:
                return _endless_read(reader)
            except Exception as exc:
                assert self.store is not None
                self.stopped_by_database = self.store.is_timeout(exc)
                raise
            finally:
                self.ended.set()


def _app_with_endless_route(settings: Settings, endless: Endless) -> tuple[object, ReadGate]:
    app = create_app(settings)
    gate: ReadGate = app.state.gate
    endless.store = app.state.store

    @app.get("/endless")
    async def endless_route(request: Request) -> int:
        return await gate.run(request, endless)

    return app, gate


@pytest.fixture
def one_worker(runs_db: str) -> Settings:
    return Settings(database_url=runs_db, query_workers=1, query_queue=1, query_timeout_ms=0)


@contextlib.contextmanager
def _served(settings: Settings, endless: Endless) -> Iterator[tuple[str, ReadGate]]:
    app, gate = _app_with_endless_route(settings, endless)
    with serve_app(app) as url:
        yield url, gate


def _leave_after(client: httpx.Client, path: str, seconds: float) -> None:
    """A client that waits ``seconds`` for an answer and then leaves."""
    with contextlib.suppress(httpx.ReadTimeout):
        client.get(path, timeout=httpx.Timeout(WAIT_S, read=seconds))


def test_sizes_are_derived_from_each_other() -> None:
    sizes = limits(Settings(query_workers=3, query_queue=0, query_timeout_ms=2500))
    assert (sizes.workers, sizes.queue, sizes.deadline_s) == (3, 24, 2.5)
    assert limits(Settings(query_workers=3, query_queue=5, query_timeout_ms=0)).queue == 5
    assert limits(Settings(query_timeout_ms=0)).deadline_s is None


def test_a_client_that_leaves_stops_its_work_and_frees_the_worker(one_worker: Settings) -> None:
    endless = Endless()
    with _served(one_worker, endless) as (url, _gate):
        # The client leaves only once the read is running, however slowly the machine gets there.
        address = httpx.URL(url)
        with socket.create_connection((address.host, address.port), timeout=WAIT_S) as client:
            client.sendall(f"GET /endless HTTP/1.1\r\nHost: {address.host}\r\n\r\n".encode())
            assert endless.started.wait(WAIT_S)
        assert endless.ended.wait(WAIT_S), "the read went on after its client left"
        assert endless.stopped_by_database
        # The one worker is free again: the next request is answered.
        r = httpx.get(f"{url}/v1/runs", params={"limit": 1}, timeout=WAIT_S)
        assert r.status_code == 200, r.text


def test_the_deadline_stops_the_work_and_answers_503(runs_db: str) -> None:
    settings = Settings(database_url=runs_db, query_workers=1, query_queue=1, query_timeout_ms=1000)
    endless = Endless()
    with _served(settings, endless) as (url, _gate):
        started = time.monotonic()
        r = httpx.get(f"{url}/endless", timeout=WAIT_S)
        took = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "2"
        assert "query_timeout_ms" in r.json()["message"]
        assert took < 1.0 + 2.0  # the deadline, plus scheduling slack on a busy machine
        assert endless.ended.wait(WAIT_S) and endless.stopped_by_database
        assert httpx.get(f"{url}/v1/agents", timeout=WAIT_S).status_code == 200


def test_a_full_queue_is_a_fast_503_with_retry_after_and_health_still_answers(one_worker: Settings) -> None:
    endless = Endless()
    with _served(one_worker, endless) as (url, gate):
        with httpx.Client(base_url=url, timeout=WAIT_S) as client:
            running = threading.Thread(target=_leave_after, args=(client, "/endless", 3.0), daemon=True)
            running.start()
            assert endless.started.wait(WAIT_S)
            # The one worker is busy; the next job waits in the one-place queue (a key check, then the read).
            waiting = threading.Thread(target=_leave_after, args=(client, "/v1/runs", 3.0), daemon=True)
            waiting.start()
            for _ in range(int(WAIT_S / 0.01)):
                if gate.waiting == 1:
                    break
                time.sleep(0.01)
            assert gate.waiting == 1
            started = time.monotonic()
            r = client.get("/v1/runs")
            assert time.monotonic() - started < 1.0
            assert r.status_code == 503 and r.headers["retry-after"] == "2"
            body = r.json()
            assert body["error"] == "overloaded" and body["field"] == "request"
            health = client.get("/health")
            assert health.status_code == 200 and time.monotonic() - started < 2.0
            running.join(WAIT_S)
            waiting.join(WAIT_S)
        assert endless.ended.wait(WAIT_S)
        assert gate.rejected == 1
