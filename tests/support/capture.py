"""A real Ingest API that also keeps every request body it received, and a search for leaked canaries.

``captured_ingest`` (registered in tests/conftest.py) serves ``agenttracer.server.ingest.create_app``
on the ``db_url`` database (SQLite and PostgreSQL through ``backend``), behind a thin ASGI layer that
records each request's path and body (gunzipped) before the real app handles it. Tests that promise
"nothing of this ever leaves the process" search ``bodies`` — what really crossed the socket — and
the database (``stored_bytes``) for their canary strings.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.server.settings import Settings
from agenttracer.store.sql.schema.engine import make_engine
from tests.support.servers import serve_app


@dataclass
class Captured:
    """The base URL of the capturing server and what it received: ``(path, body)`` per request."""

    url: str = ""
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> bytes:
        with self.lock:
            return b"\n".join(body for _, body in self.requests)


def _decoded(body: bytes, encoding: str) -> bytes:
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error, EOFError):
        pass
    return body


class _Recorder:
    """ASGI middleware: buffers the request body, records it, replays it to the wrapped app."""

    def __init__(self, app: Any, captured: Captured) -> None:
        self.app = app
        self.captured = captured

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        with self.captured.lock:
            self.captured.requests.append((scope["path"], _decoded(body, headers.get("content-encoding", ""))))
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@pytest.fixture
def captured_ingest(live_settings: Settings) -> Iterator[Captured]:
    """A real Ingest API on ``db_url`` that records every request body (see the module docstring)."""
    from agenttracer.server.ingest import create_app

    captured = Captured()
    with serve_app(_Recorder(create_app(live_settings), captured)) as url:
        captured.url = url
        yield captured


def sqlite_bytes(db_url: str, *, require_wal: bool = True) -> bytes:
    """The SQLite database file and its WAL/SHM, as raw bytes (a database never written has no WAL)."""
    path = Path(sa.engine.make_url(db_url).database or "")
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    assert files[0].exists() and (files[1].exists() or not require_wal), "expected the database file and its WAL"
    return b"\n".join(f.read_bytes() for f in files if f.exists())


def pg_dump(db_url: str) -> str:
    """Every row of every table in the test schema, as JSON text."""
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
            ).scalars()
            parts = []
            for table in tables:
                rows = conn.execute(sa.text(f'SELECT row_to_json(t)::text FROM "{table}" t')).scalars()
                parts.append(f"== {table}\n" + "\n".join(rows))
            return "\n".join(parts)
    finally:
        engine.dispose()


def stored_bytes(db_url: str) -> bytes:
    """What the database holds, raw (SQLite files) or dumped (PostgreSQL)."""
    return sqlite_bytes(db_url, require_wal=False) if db_url.startswith("sqlite") else pg_dump(db_url).encode()
