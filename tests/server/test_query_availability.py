"""The Query API stays available under many concurrent readers, on SQLite and PostgreSQL with keys on: every
request is answered (200, or 503 with Retry-After) within its deadline, ``/health`` answers in under a second
throughout, and the server serves normally right afterwards. (Before the read gate, 60 concurrent readers
with a key froze every worker thread: no answer at all, ``/health`` included.)

The servers run as processes of their own. "Within its deadline" is judged by the server's own request
log (``duration_ms``): on a busy two-core machine the load's clients queue their requests for seconds
before sending them, and that wait is the load generator's, not the server's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from agenttracer.store.sql.keys import create_key
from agenttracer.store.sql.schema.engine import make_engine
from tests.support.readers import Ingest, LoadResult, read_load
from tests.support.rundata import T0, RunSpec, StepSpec, insert_runs
from tests.support.servers import free_port, serve_process

pytestmark = [pytest.mark.slow]

DEADLINE_MS = 10_000
# The client waits this much longer than the server's deadline before calling a request unanswered.
CLIENT_SLACK_S = 30.0
# The server answers at its deadline; this covers writing the answer on a busy machine.
SERVER_SLACK_S = 1.0
HEALTH_BAR_S = 1.0


@dataclass(frozen=True)
class Keyed:
    db_url: str
    log_dir: Path
    run_ids: list[str]
    read: dict[str, str]
    ingest: dict[str, str]


@pytest.fixture
def keyed(db_url: str, tmp_path: Path) -> Iterator[Keyed]:
    """300 runs and a key of each scope (so every request is a key check plus a read)."""
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    specs = [RunSpec(f"agent-{i % 5}", "v1", "prod", T0 + timedelta(minutes=i), "success" if i % 4 else "failure",
                     steps=[StepSpec(1, "llm", "gpt", latency_ms=float(i % 90 + 1)), StepSpec(2, "tool", "search")])
             for i in range(300)]
    insert_runs(engine, specs)
    _, read_key = create_key(engine, "read")
    _, ingest_key = create_key(engine, "ingest")
    engine.dispose()
    yield Keyed(db_url, tmp_path, [s.run_id for s in specs],
                {"Authorization": f"Bearer {read_key}"}, {"Authorization": f"Bearer {ingest_key}"})


@contextlib.contextmanager
def _serve(part: str, keyed: Keyed) -> Iterator[str]:
    """``agenttracer serve <part>`` as a process of its own: the load's clients share no interpreter with it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update(AGENTTRACER_DATABASE_URL=keyed.db_url, AGENTTRACER_LOG_LEVEL="info", AGENTTRACER_LOG_FORMAT="json",
               AGENTTRACER_QUERY_TIMEOUT_MS=str(DEADLINE_MS))
    cmd = [sys.executable, "-m", "agenttracer", "serve", part, "--port", str(port)]
    with serve_process(cmd, env, f"http://127.0.0.1:{port}/health", keyed.log_dir / f"{part}.log"):
        yield f"http://127.0.0.1:{port}"


def _server_durations_s(log: Path) -> list[float]:
    """How long the server took over each request but /health, from its JSON request log."""
    out = []
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            # Every request but the probe's; one refused before routing is logged as route "unmatched".
            if isinstance(record, dict) and record.get("event") == "request" and record.get("route") != "/health":
                out.append(float(record["duration_ms"]) / 1000)
    return out


def _assert_available(result: LoadResult, log: Path) -> None:
    assert not result.unanswered(), result.unanswered()[:5]
    assert not result.unexpected(), result.unexpected()[:5]
    durations = _server_durations_s(log)
    assert len(durations) >= len(result.answers)
    assert max(durations) <= DEADLINE_MS / 1000 + SERVER_SLACK_S
    assert result.health, "the probe never ran"
    assert result.health_worst_s() < HEALTH_BAR_S, sorted(h.seconds for h in result.health)[-5:]


def test_sixty_concurrent_readers_with_keys_are_all_answered_and_health_stays_up(keyed: Keyed) -> None:
    with _serve("query", keyed) as url:
        result = asyncio.run(read_load(url, readers=60, rounds=2, run_ids=keyed.run_ids, headers=keyed.read,
                                       timeout_s=DEADLINE_MS / 1000 + CLIENT_SLACK_S))
    _assert_available(result, keyed.log_dir / "query.log")
    assert len(result.answers) == 120


def test_250_concurrent_readers_during_ingest_then_normal_service_at_once(keyed: Keyed) -> None:
    with _serve("query", keyed) as query_url, _serve("ingest", keyed) as ingest_url:
        with Ingest(ingest_url, keyed.ingest) as ingest:
            result = asyncio.run(read_load(query_url, readers=250, rounds=4, run_ids=keyed.run_ids,
                                           headers=keyed.read, timeout_s=DEADLINE_MS / 1000 + CLIENT_SLACK_S))
        # Right afterwards: a dashboard's worth of readers is served in full, nobody turned away.
        after = asyncio.run(read_load(query_url, readers=8, rounds=4, run_ids=keyed.run_ids, headers=keyed.read,
                                      timeout_s=DEADLINE_MS / 1000))
    _assert_available(result, keyed.log_dir / "query.log")
    assert len(result.answers) == 1000
    assert ingest.statuses and all(status == 200 for status in ingest.statuses), set(ingest.statuses)
    assert [a.status for a in after.answers] == [200] * 32
