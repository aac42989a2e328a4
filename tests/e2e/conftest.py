"""The stack the browser tests drive: Query API and dashboard on free loopback ports over a temp SQLite.

One stack per test module (the e2e suite stays quick); the module seeds it once.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn

from agenttracer.server import query, ui
from agenttracer.server.settings import Settings
from agenttracer.store.engine import make_engine
from agenttracer.store.migrate import upgrade
from tests.support.browser import browser, page  # noqa: F401  (fixtures)


@dataclass(frozen=True)
class Stack:
    db_url: str
    query_url: str
    ui_url: str


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _start(app: Any, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not (ui.UI_DIST / "index.html").is_file():
        pytest.fail("the dashboard is not built: run `make ui` (make test builds it first)")
    db_file: Path = tmp_path_factory.mktemp("e2e") / "agenttracer.db"
    db_url = f"sqlite:///{db_file.as_posix()}"
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    upgrade(engine)
    engine.dispose()
    # Ports first, so each app knows the other's address (CORS origin, public Query API URL).
    q_sock, ui_sock = _bind(), _bind()
    q_port, ui_port = q_sock.getsockname()[1], ui_sock.getsockname()[1]
    ui_origin = f"http://127.0.0.1:{ui_port}"
    settings = Settings(
        database_url=db_url,
        query_port=q_port,
        ui_port=ui_port,
        cors_origins=(ui_origin,),
    )
    running = [_start(query.create_app(settings), q_sock), _start(ui.create_app(settings), ui_sock)]
    try:
        yield Stack(db_url=db_url, query_url=f"http://127.0.0.1:{q_port}", ui_url=ui_origin)
    finally:
        for server, _ in running:
            server.should_exit = True
        for _, thread in running:
            thread.join(timeout=10)
        q_sock.close()
        ui_sock.close()
