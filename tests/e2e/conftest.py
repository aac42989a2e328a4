"""The stack the browser tests drive: a real ``agenttracer up`` subprocess on free loopback ports over a
temporary SQLite file, started once per test module (the e2e suite stays quick).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agenttracer.server import ui
from tests.support.browser import browser, page  # noqa: F401  (fixtures for the e2e tests)
from tests.support.servers import free_port

STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Stack:
    db_url: str
    ingest_url: str
    query_url: str
    ui_url: str
    workdir: Path


def _wait_until_up(proc: subprocess.Popen[bytes], urls: list[str], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    pending = list(urls)
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"agenttracer up exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"agenttracer up did not answer on {pending}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(pending[0], timeout=1.0).status_code < 500:
                pending.pop(0)
                continue
        except httpx.TransportError:
            pass
        time.sleep(0.1)


@contextmanager
def running_up(workdir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """``agenttracer up`` as a subprocess on free ports over ``workdir/agenttracer.db``, until the block ends."""
    if not (ui.UI_DIST / "index.html").is_file():
        pytest.fail("the dashboard is not built: run `make ui` (make test builds it first)")
    db_url = f"sqlite:///{(workdir / 'agenttracer.db').as_posix()}"
    ingest_port, query_port, ui_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update({"AGENTTRACER_DATABASE_URL": db_url, **(extra_env or {})})
    log = workdir / "up.log"
    cmd = [
        sys.executable, "-m", "agenttracer", "up",
        "--ingest-port", str(ingest_port), "--query-port", str(query_port), "--ui-port", str(ui_port),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    stack = Stack(
        db_url=db_url,
        ingest_url=f"http://127.0.0.1:{ingest_port}",
        query_url=f"http://127.0.0.1:{query_port}",
        ui_url=f"http://127.0.0.1:{ui_port}",
        workdir=workdir,
    )
    try:
        urls = [f"{stack.ingest_url}/health", f"{stack.query_url}/health", f"{stack.ui_url}/config.json"]
        _wait_until_up(proc, urls, log)
        yield stack
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_up(tmp_path_factory.mktemp("e2e")) as s:
        yield s
