"""A scriptable Ingest API stand-in on a real loopback socket, for the SDK's delivery and fault tests.

It speaks just enough of the ingest contract (gzip JSON batches in, per-event results out) and can be
told to answer the next requests with an error status, a ``Retry-After``, silence (accept the connection
and never answer) or a dropped connection. Tests that need the real server use tests/support/servers.py;
this one exists for the failure modes a healthy server never produces on demand.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """How to answer one request: a status (+ headers), ``hang`` (never answer) or ``drop`` (close)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "answer"  # answer | hang | drop
    reject: frozenset[int] = frozenset()  # indexes of events to report as rejected


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    events: list[dict[str, Any]]
    status: int | None  # None when the server never answered


class FaultServer:
    """Records every batch it receives; ``script(...)`` queues the replies for the next requests."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._connections: list[socket.socket] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.append(self.connection)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                events = json.loads(body)["events"]
                reply = server._next_reply()
                record = Received(time.monotonic(), dict(self.headers), events, None)
                with server._lock:
                    server.received.append(record)
                if reply.action == "hang":
                    server._release.wait(60)
                    self.close_connection = True
                    return
                if reply.action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                record.status = reply.status
                if 200 <= reply.status < 300 or reply.reject:
                    results = [{"index": i, "status": "rejected" if i in reply.reject else "accepted"}
                               for i in range(len(events))]
                    payload = json.dumps({"results": results}).encode()
                else:
                    payload = json.dumps({"error": f"scripted {reply.status}"}).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._script.popleft() if self._script else Reply()

    def stored(self) -> list[dict[str, Any]]:
        """Events from requests answered 2xx (what a real server would have stored), in arrival order."""
        with self._lock:
            return [e for r in self.received if r.status is not None and 200 <= r.status < 300 for e in r.events]

    def stop(self) -> None:
        """Stop like a killed process would: no new connections, and the open ones are cut."""
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            for conn in self._connections:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()


@contextmanager
def fault_server(port: int = 0) -> Iterator[FaultServer]:
    server = FaultServer(port)
    try:
        yield server
    finally:
        server.stop()


def refused_url() -> str:
    """A loopback URL on which nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def silent_listener() -> Iterator[str]:
    """A socket that accepts connections (the kernel completes the handshake) and never reads or answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
