"""The compose stack's commands, run as separate processes against a fresh PostgreSQL schema.

This is what the containers do, minus Docker: ``agenttracer migrate`` once, then
``agenttracer serve ingest`` and ``agenttracer serve query`` as two independent processes configured
only through ``AGENTTRACER_*`` variables. A run goes in through one and comes back out of the other,
first with auth off, then with keys made by ``agenttracer keys create``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.tables import runs
from tests.support.db import drop_pg_schema, new_pg_schema_url
from tests.support.servers import free_port, serve_process

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STARTUP_S = 30.0


def agenttracer(*args: str) -> list[str]:
    """The installed console script — the containers' ENTRYPOINT — not ``python -m``."""
    script = Path(sys.executable).parent / "agenttracer"
    assert script.is_file(), f"the agenttracer console script is not installed next to {sys.executable}"
    return [str(script), *args]


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    url, schema = new_pg_schema_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update(AGENTTRACER_DATABASE_URL=url, AGENTTRACER_HOST="127.0.0.1", AGENTTRACER_LOG_LEVEL="warning")
    try:
        yield env
    finally:
        drop_pg_schema(schema)


@contextmanager
def server(env: dict[str, str], part: str, port: int, log: Path) -> Iterator[str]:
    env = {**env, f"AGENTTRACER_{part.upper()}_PORT": str(port)}
    base = f"http://127.0.0.1:{port}"
    with serve_process(agenttracer("serve", part), env, f"{base}/health", log, startup_s=STARTUP_S):
        yield base


def one_run() -> tuple[str, list[dict[str, object]]]:
    run_id = str(uuid.uuid4())
    t0 = datetime.now(timezone.utc) - timedelta(seconds=2)

    def ts(ms: int) -> str:
        return (t0 + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")

    identity = {"run_id": run_id, "agent_id": "deploy-check", "agent_version": "v1", "environment": "staging"}
    events: list[dict[str, object]] = [
        {"type": "run_start", **identity, "started_at": ts(0)},
        {"type": "step", "run_id": run_id, "seq": 1, "step_type": "plan", "name": "plan", "status": "ok",
         "started_at": ts(0), "ended_at": ts(12), "latency_ms": 12.0},
        {"type": "step", "run_id": run_id, "seq": 2, "step_type": "tool", "name": "billing_api", "status": "ok",
         "started_at": ts(12), "ended_at": ts(40), "latency_ms": 28.0},
        {"type": "run_end", **identity, "ended_at": ts(41), "status": "success"},
    ]
    return run_id, events


def test_migrate_then_ingest_and_query_as_separate_processes(stack_env: dict[str, str], tmp_path: Path) -> None:
    migrate = subprocess.run(agenttracer("migrate"), env=stack_env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr

    with server(stack_env, "ingest", free_port(), tmp_path / "ingest.log") as ingest, \
            server(stack_env, "query", free_port(), tmp_path / "query.log") as query:
        run_id, events = one_run()
        resp = httpx.post(f"{ingest}/v1/ingest", json={"events": events}, timeout=10)
        assert resp.status_code == 200, resp.text

        detail = httpx.get(f"{query}/v1/runs/{run_id}", timeout=10)
        assert detail.status_code == 200, detail.text
        body = detail.json()
        assert body["run"]["status"] == "success"
        assert [s["name"] for s in body["steps"]] == ["plan", "billing_api"]

    # Now lock the deployment with keys, as docs/deployment.md tells operators to.
    keys = {}
    for scope in ("ingest", "read"):
        made = subprocess.run(agenttracer("keys", "create", "--scope", scope), env=stack_env,
                              capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        keys[scope] = made.stdout.strip()

    with server(stack_env, "ingest", free_port(), tmp_path / "ingest2.log") as ingest, \
            server(stack_env, "query", free_port(), tmp_path / "query2.log") as query:
        run_id, events = one_run()
        assert httpx.post(f"{ingest}/v1/ingest", json={"events": events}, timeout=10).status_code == 401
        ok = httpx.post(f"{ingest}/v1/ingest", json={"events": events}, timeout=10,
                        headers={"Authorization": f"Bearer {keys['ingest']}"})
        assert ok.status_code == 200, ok.text
        assert httpx.get(f"{query}/v1/runs/{run_id}", timeout=10,
                         headers={"Authorization": f"Bearer {keys['ingest']}"}).status_code == 403
        read = httpx.get(f"{query}/v1/runs/{run_id}", timeout=10, headers={"X-API-Key": keys["read"]})
        assert read.status_code == 200 and read.json()["run"]["agent_id"] == "deploy-check"
    for log in tmp_path.glob("*.log"):  # the keys never reach a log line
        assert keys["ingest"] not in log.read_text() and keys["read"] not in log.read_text()


def test_the_ingest_process_prunes_by_itself_when_retention_is_set(stack_env: dict[str, str], tmp_path: Path) -> None:
    assert subprocess.run(agenttracer("migrate"), env=stack_env, capture_output=True, timeout=120).returncode == 0
    engine = make_engine(stack_env["AGENTTRACER_DATABASE_URL"], poolclass=sa.pool.NullPool)
    old = datetime.now(timezone.utc) - timedelta(days=45)
    recent = datetime.now(timezone.utc) - timedelta(days=3)
    with engine.begin() as conn:
        for run_id, t in (("old-run", old), ("recent-run", recent)):
            conn.execute(runs.insert().values(run_id=run_id, started_at=t, ingested_at=t, updated_at=t))

    def remaining() -> set[str]:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(runs.c.run_id)).scalars())

    env = {**stack_env, "AGENTTRACER_RETENTION_DAYS": "30"}
    with server(env, "ingest", free_port(), tmp_path / "ingest.log"):
        deadline = time.monotonic() + 20
        while "old-run" in remaining() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert remaining() == {"recent-run"}
    engine.dispose()
