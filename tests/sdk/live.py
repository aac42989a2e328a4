"""A real uvicorn server on a chosen loopback port that can be stopped and started again (for restarts)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from tests.support.servers import _QuietServer


class PortServer:
    """Serve ``app`` on 127.0.0.1:``port`` in a thread until ``stop()`` (which also closes connections)."""

    def __init__(self, app: Any, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._server = _QuietServer(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                                   timeout_graceful_shutdown=0))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        self._stopped = False

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.should_exit = True
        self._thread.join(15)
        self._sock.close()


def serve_on_port(app: Any, port: int) -> PortServer:
    return PortServer(app, port)
