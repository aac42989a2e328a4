"""SIGTERM while a batch is being written (a real ``agenttracer serve ingest`` on SQLite and PostgreSQL): the
batch's answer says what was stored. The write is held up by a lock the test holds on the database until the
server's shutdown timeout has passed (so the server cancels the request), then released: the batch commits,
and the client gets its JSON 200 with per-event results — not a plain-text 500 for a batch that is stored.
A batch still waiting for its body when the server stops gets the documented JSON 503 instead."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.tables import runs, steps
from tests.support.db import WriteLock
from tests.support.events import full_run
from tests.support.servers import free_port, serve_process

pytestmark = [pytest.mark.slow]

SHUTDOWN_TIMEOUT_S = 1


def _server_cmd(db_url: str, port: int) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update(AGENTTRACER_DATABASE_URL=db_url, AGENTTRACER_LOG_LEVEL="warning",
               AGENTTRACER_SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT_S), AGENTTRACER_ROLLUP_INTERVAL_SECONDS="0")
    return [sys.executable, "-m", "agenttracer", "serve", "ingest", "--port", str(port)], env


def test_a_batch_cut_off_by_sigterm_is_answered_with_what_was_stored(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    cmd, env = _server_cmd(db_url, port)
    batch = full_run()
    answers: list[httpx.Response] = []
    with serve_process(cmd, env, f"http://127.0.0.1:{port}/health", tmp_path / "server.log") as proc:
        lock = WriteLock(db_url)
        sender = threading.Thread(target=lambda: answers.append(
            httpx.post(f"http://127.0.0.1:{port}/v1/ingest", json={"events": batch}, timeout=30)))
        sender.start()
        time.sleep(0.5)  # the batch now waits for the database inside its write
        proc.send_signal(signal.SIGTERM)
        time.sleep(SHUTDOWN_TIMEOUT_S + 1.0)  # past the grace period: the server has cancelled the request
        lock.release()
        sender.join(30)
        assert proc.wait(15) is not None
    (answer,) = answers
    assert answer.headers["content-type"] == "application/json", answer.text
    assert answer.status_code == 200 and answer.json()["accepted"] == len(batch), answer.text
    check = make_engine(db_url, poolclass=sa.pool.NullPool)
    with check.connect() as conn:
        run_id = batch[0]["run_id"]
        assert conn.execute(sa.select(sa.func.count()).where(runs.c.run_id == run_id)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).where(steps.c.run_id == run_id)).scalar() == len(batch) - 2
    check.dispose()


def test_a_batch_still_arriving_at_sigterm_gets_the_json_503(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    cmd, env = _server_cmd(db_url, port)
    with serve_process(cmd, env, f"http://127.0.0.1:{port}/health", tmp_path / "server.log") as proc:
        sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        sock.sendall(b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
        sock.close()
        assert proc.wait(15) is not None
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"application/json" in head and b"retry-after" in head.lower()
    assert b'"server_stopping"' in body
