"""The runner serves several apps in one event loop and stops gracefully: a request in flight when
the stop arrives is completed and answered, and new connections are refused afterwards."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import httpx
from fastapi import FastAPI

from agenttracer.server.runner import EXIT_GRACE_S, Runner, Service, bind_socket, freeze_startup_heap
from agenttracer.store.sql.schema.engine import SQLITE_BUSY_TIMEOUT_MS
from agenttracer.store.sql.schema.migrate import upgrade
from tests.support.events import full_run
from tests.support.servers import free_port


def _slow_app(started: threading.Event, release: threading.Event) -> FastAPI:
    app = FastAPI()

    @app.post("/work")
    def work() -> dict[str, str]:
        started.set()
        release.wait(10)
        return {"done": "yes"}

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


def test_two_apps_share_one_loop_and_an_in_flight_request_survives_the_stop() -> None:
    started, release = threading.Event(), threading.Event()
    socks = [bind_socket("127.0.0.1", 0), bind_socket("127.0.0.1", 0)]
    ports = [s.getsockname()[1] for s in socks]
    app = _slow_app(started, release)
    services = [Service(f"app{i}", app, "127.0.0.1", s.getsockname()[1], s) for i, s in enumerate(socks)]
    runner = Runner(services, log_level="warning")
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not runner.started:
        assert time.monotonic() < deadline, "runner did not start"
        time.sleep(0.01)
    assert all(httpx.get(f"http://127.0.0.1:{p}/ping").json() == {"pong": "yes"} for p in ports)

    answers: list[httpx.Response] = []
    url = f"http://127.0.0.1:{ports[0]}/work"
    client = threading.Thread(target=lambda: answers.append(httpx.post(url, timeout=15)))
    client.start()
    assert started.wait(10)
    runner.stop()  # what SIGTERM does
    time.sleep(0.3)
    assert thread.is_alive(), "the runner must wait for the request in flight"
    release.set()
    client.join(15)
    thread.join(15)
    assert not thread.is_alive()
    assert answers and answers[0].status_code == 200 and answers[0].json() == {"done": "yes"}
    for port in ports:
        try:
            httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2)
            raise AssertionError("a stopped server still answers")
        except httpx.TransportError:
            pass


def test_freezing_the_startup_heap_keeps_no_garbage_and_exempts_the_live_objects() -> None:
    class Node:
        pass

    cycle = Node()
    cycle.self = cycle  # type: ignore[attr-defined]
    dead = weakref.ref(cycle)
    del cycle
    live = Node()
    try:
        freeze_startup_heap()
        assert dead() is None  # collected first, not frozen for good
        assert gc.get_freeze_count() > 0
        assert not gc.is_tracked(live) or all(o is not live for o in gc.get_objects())
    finally:
        gc.unfreeze()


def test_sigterm_stops_a_real_server_within_the_shutdown_timeout_despite_a_stuck_request(tmp_path: Path) -> None:
    """A real ``agenttracer serve ingest`` process whose batch is stuck waiting for a SQLite write lock
    (held here, as a slow disk or a long transaction would): SIGTERM still ends it within
    shutdown_timeout_seconds + EXIT_GRACE_S, long before the lock wait (10 s) would have."""
    db = tmp_path / "at.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update(AGENTTRACER_SHUTDOWN_TIMEOUT_SECONDS="1", AGENTTRACER_ROLLUP_INTERVAL_SECONDS="0")
    proc = subprocess.Popen([sys.executable, "-m", "agenttracer", "serve", "ingest", "--port", str(port),
                             "--database-url", url], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the write lock: the server's batch waits for it
        answers: list[object] = []

        def post() -> None:
            try:
                answers.append(httpx.post(base + "/v1/ingest", json={"events": full_run(steps=1)}, timeout=30))
            except httpx.TransportError as exc:
                answers.append(exc)

        client = threading.Thread(target=post, daemon=True)
        client.start()
        time.sleep(1.0)  # the batch is in flight, waiting on the lock
        assert not answers
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=1 + EXIT_GRACE_S + 2)
        took = time.monotonic() - signalled
        blocker.rollback()
        blocker.close()
        assert took < SQLITE_BUSY_TIMEOUT_MS / 1000, took
        client.join(10)
        # Never acknowledged: the batch was not stored (the client retries it).
        assert not any(isinstance(a, httpx.Response) and a.status_code == 200 for a in answers)
        with sqlite3.connect(db) as check:
            assert check.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
