"""The runner serves several apps in one event loop and stops gracefully: a request in flight when
the stop arrives is completed and answered, and new connections are refused afterwards."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import httpx
from fastapi import FastAPI

from agenttracer.server.runner import Runner, Service, bind_socket, freeze_startup_heap


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
