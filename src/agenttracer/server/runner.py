"""Serve several ASGI apps (ingest, query, dashboard) from ONE process and ONE event loop.

uvicorn's ``Server`` serves one app; we run one per app side by side with ``asyncio.gather`` and own
the signals ourselves: the first SIGINT/SIGTERM asks every server to stop accepting connections and
to finish the requests in flight (a batch being written is committed and answered), then runs each
app's lifespan shutdown; a second SIGINT forces the exit.

The stop is bounded: requests still in flight ``shutdown_timeout_s`` after the signal are cancelled
(uvicorn's ``timeout_graceful_shutdown``), and since a cancelled request's synchronous work keeps its
worker thread (a database call cannot be interrupted from outside), a watchdog armed by the signal ends
the process ``EXIT_GRACE_S`` later if it is still there. A batch cut off that way was never
acknowledged: its transaction rolls back and the client retries it. Every address is bound before any app starts,
so a taken port fails fast with ``StartupError``; if an app's start-up fails, the others stop too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn

from agenttracer.server.connections import ConnectionTimeouts, uvicorn_options

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0
# After the graceful part: time for the lifespan shutdowns (engines disposed, workers stopped) before the
# watchdog exits the process regardless.
EXIT_GRACE_S = 3.0
FORCED_EXIT_CODE = 3

log = logging.getLogger("agenttracer.runner")


class StartupError(RuntimeError):
    """A server could not start (for instance: its address is already in use)."""


@dataclass(frozen=True)
class Service:
    """One app to serve: a name for messages, the ASGI app, and where to listen."""

    name: str
    app: Any
    host: str
    port: int
    # An already-bound socket (tests bind port 0 first to know the port); host/port then only label it.
    sock: socket.socket | None = None


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``serve``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _config(service: Service, log_level: str | None, shutdown_timeout_s: float,
            timeouts: ConnectionTimeouts) -> uvicorn.Config:
    return uvicorn.Config(
        service.app,
        host=service.host,
        port=service.port,
        log_level=log_level,
        # The caller configures logging once for the process (three servers, one log stream); with
        # log_level None uvicorn leaves the logger levels alone too.
        log_config=None,
        lifespan="on",
        # Each API logs one line per request itself, with its request id (server/observe.py).
        access_log=False,
        # Slow headers and idle keep-alive connections are closed (server/connections.py); idle ones also
        # must not hold up a graceful stop for long.
        **uvicorn_options(timeouts),
        timeout_graceful_shutdown=max(int(shutdown_timeout_s), 1) if shutdown_timeout_s else None,
        server_header=False,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening address up front, so that "port in use" is a clear error before anything runs."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class Runner:
    """Runs services together; ``stop()`` (or a signal) begins a graceful shutdown of all of them."""

    def __init__(self, services: Sequence[Service], *, log_level: str | None = None,
                 shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
                 timeouts: ConnectionTimeouts = ConnectionTimeouts()) -> None:
        self.services = list(services)
        self.shutdown_timeout_s = shutdown_timeout_s
        self.servers = [_Server(_config(s, log_level, shutdown_timeout_s, timeouts)) for s in self.services]
        self._stopping = False
        self._watchdog: threading.Timer | None = None
        self._failed: list[str] = []

    def bound_services(self) -> list[Service]:
        """The services with the addresses they actually listen on (port 0 becomes the real port)."""
        out = []
        for svc in self.services:
            if svc.sock is None:
                out.append(svc)
                continue
            host, port = svc.sock.getsockname()[:2]
            out.append(Service(svc.name, svc.app, host, port, svc.sock))
        return out

    @property
    def started(self) -> bool:
        return all(s.started for s in self.servers)

    def stop(self, force: bool = False) -> None:
        self._stopping = True
        for server in self.servers:
            server.should_exit = True
            if force:
                server.force_exit = True

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # A second Ctrl-C means "now": abandon in-flight requests.
        self.stop(force=self._stopping and signum == signal.SIGINT)
        if self._watchdog is None and self.shutdown_timeout_s:
            # Only for a real signal in a serving process: the watchdog ends the whole process.
            self._watchdog = threading.Timer(self.shutdown_timeout_s + EXIT_GRACE_S, _exit_now)
            self._watchdog.daemon = True
            self._watchdog.start()

    async def _serve_one(self, server: _Server, service: Service) -> None:
        sock = service.sock or bind_socket(service.host, service.port)
        try:
            await server.serve(sockets=[sock])
        except SystemExit:
            # uvicorn exits this way when an app's lifespan start-up fails: stop the others too.
            self._failed.append(service.name)
            self.stop()
        finally:
            sock.close()

    async def serve(self, on_started: Callable[[list[Service]], None] | None = None) -> None:
        """Serve every service until stopped; raises StartupError if one of them could not start."""
        pairs = zip(self.servers, self.services, strict=True)
        tasks = [asyncio.create_task(self._serve_one(srv, svc)) for srv, svc in pairs]
        watcher = asyncio.create_task(self._announce(on_started))
        try:
            await asyncio.gather(*tasks)
        finally:
            watcher.cancel()
        if self._failed:
            raise StartupError(f"could not start: {', '.join(self._failed)} (see the log above)")

    async def _announce(self, on_started: Callable[[list[Service]], None] | None) -> None:
        while not self.started:
            await asyncio.sleep(0.02)
        if on_started is not None:
            on_started(self.bound_services())

    def run(self, on_started: Callable[[list[Service]], None] | None = None) -> None:
        """Serve until a signal arrives (installs SIGINT/SIGTERM handlers when on the main thread)."""
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED_SIGNALS}
        try:
            asyncio.run(self.serve(on_started))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


OnStarted = Callable[[list[Service]], None]


def _exit_now() -> None:
    log.error("stop: work still in flight after the shutdown timeout; exiting now")
    logging.shutdown()
    os._exit(FORCED_EXIT_CODE)


def freeze_startup_heap() -> None:
    """Put everything allocated so far (modules, apps, schemas: ~100k objects that live as long as the
    process) out of the cyclic garbage collector's reach, so its full collections stop walking them
    again and again. Timed ad hoc on the ingest path in one process: the full collections cost ~1.4 us per
    step of ~29 us, and ~0.03 us after this. Called once by a serving process before it serves;
    ``gc.collect()`` first, so no garbage is kept for good."""
    gc.collect()
    gc.freeze()


def serve(services: Sequence[Service], *, log_level: str | None = None, on_started: OnStarted | None = None,
          shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
          timeouts: ConnectionTimeouts = ConnectionTimeouts()) -> None:
    """Serve ``services`` in this process until SIGINT/SIGTERM; raises StartupError if one cannot start.

    Sockets are bound before any app starts, so a taken port fails fast and nothing half-starts. After a
    signal the process is gone within ``shutdown_timeout_s + EXIT_GRACE_S`` seconds.
    """
    bound: list[Service] = []
    try:
        for svc in services:
            sock = svc.sock or bind_socket(svc.host, svc.port)
            bound.append(Service(svc.name, svc.app, svc.host, svc.port, sock))
    except StartupError:
        for svc in bound:
            if svc.sock is not None:
                svc.sock.close()
        raise
    Runner(bound, log_level=log_level, shutdown_timeout_s=shutdown_timeout_s, timeouts=timeouts).run(on_started)
