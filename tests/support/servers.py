"""Live-server fixtures: real uvicorn servers on free loopback ports, for tests that speak real HTTP.

Use them from any test (registered in ``tests/conftest.py``)::

    def test_something(live_ingest: str) -> None:           # both backends, via ``backend``
        httpx.post(f"{live_ingest}/v1/ingest", json={"events": [...]})

Fixtures
--------
``live_ingest`` -> str
    Base URL (``http://127.0.0.1:PORT``) of the Ingest API serving the migrated ``db_url`` database.
    Parametrised over SQLite and PostgreSQL through the ``backend`` fixture of tests/support/db.py.
``live_query`` -> str
    Base URL of the Query API (``agenttracer.server.query.create_app``) on the same ``db_url``;
    use it together with ``live_ingest`` to write then read the same database.
``live_settings`` -> Settings
    The ``Settings`` both live servers were built with (``database_url`` = ``db_url``). Override
    settings for your own app with ``dataclasses.replace(live_settings, ...)`` and ``serve_app``.

Helpers
-------
``serve_app(app)`` -> context manager yielding the base URL
    Runs any ASGI app (e.g. ``query.create_app(settings)``, ``ui.create_app(settings)``) on a free
    loopback port in a background thread, waits until it accepts connections, and stops it (running
    its lifespan shutdown) on exit. The socket is bound before the server starts, so there is no race
    for the port.
``free_port()`` -> int
    A port that was free a moment ago (for subprocess servers that must be told a port up front).
``serve_process(cmd, env, health_url, log)`` -> context manager yielding the ``Popen``
    Starts a server as a real subprocess (output to ``log``), waits until ``health_url`` answers 200 —
    failing with the log's tail if it exits or takes too long — and terminates it (then kills) on exit.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from agenttracer.server.connections import ConnectionTimeouts, uvicorn_options
from agenttracer.server.settings import Settings

STARTUP_TIMEOUT_S = 15.0


def free_port() -> int:
    """A loopback port the OS just handed out (another process could still take it: prefer serve_app)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _QuietServer(uvicorn.Server):
    # Signals belong to the test runner's main thread, not to a server in a helper thread.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def serve_app(app: Any, *, log_level: str = "warning", timeouts: ConnectionTimeouts | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1:<free port> in a thread; yield ``http://127.0.0.1:<port>``.
    Connections get the servers' header and idle timeouts (``timeouts``, default: the settings' defaults)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False,
                            **uvicorn_options(timeouts or ConnectionTimeouts()))
    server = _QuietServer(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if errors or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"test server failed to start: {errors[0] if errors else 'thread exited'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("test server did not start in time")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_S)
        sock.close()


@contextlib.contextmanager
def serve_process(cmd: Sequence[str], env: Mapping[str, str], health_url: str, log: Path, *,
                  startup_s: float = 30.0, append: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab" if append else "wb") as out:
        proc = subprocess.Popen(list(cmd), env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{cmd[-2:]} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(health_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{cmd[-2:]} did not become healthy:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def live_settings(db_url: str) -> Settings:
    """Settings pointing at the migrated test database (auth off, loopback only)."""
    return Settings(database_url=db_url)


@pytest.fixture
def live_ingest(live_settings: Settings) -> Iterator[str]:
    """Base URL of a real Ingest API on a free loopback port, on ``db_url`` (SQLite and PostgreSQL)."""
    from agenttracer.server.ingest import create_app

    with serve_app(create_app(live_settings)) as url:
        yield url


@pytest.fixture
def live_query(live_settings: Settings) -> Iterator[str]:
    """Base URL of a real Query API on a free loopback port, on the same database as ``live_ingest``."""
    from agenttracer.server.query import create_app

    with serve_app(create_app(live_settings)) as url:
        yield url
