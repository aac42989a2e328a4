"""The SDK against the real Ingest API on loopback (SQLite and PostgreSQL), read back through the Query API.

Covers the spec's two usage snippets run as written (only the URL points at the test server), many
threads writing one run, a real server restart in the middle of a run, and the shipped examples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from agenttracer import AgentTracer
from agenttracer.server.settings import Settings
from agenttracer.store.sql.schema.engine import make_engine
from tests.sdk.live import serve_on_port
from tests.support.servers import free_port

Make = Callable[..., AgentTracer]
ROOT = Path(__file__).resolve().parents[2]

# The spec's "Minimal usage" snippets, as users will paste them.
SPEC_INSTRUMENTING = '''
from sdk.agenttrace import AgentTracer

tracer = AgentTracer(
    agent_id="support-agent",
    agent_version="v1.0.0",
    environment="production",
    api_url="http://localhost:8000"
)

with tracer.start_run() as run:
    with run.step("plan", "analyze_query"):
        # Your planning logic
        pass

    with run.step("tool", "billing_api"):
        # Tool call logic
        pass

    with run.step("respond", "generate_response"):
        # Response generation
        pass
'''

SPEC_FAILURES = '''
with tracer.start_run() as run:
    with run.step("plan", "analyze"):
        pass

    try:
        with run.step("tool", "external_api"):
            result = call_external_api()
    except TimeoutError:
        run.record_failure(
            failure_type="tool",
            failure_code="timeout",
            message="External API timeout after 30s"
        )
        return
'''


def run_detail(query_url: str, run_id: str) -> dict[str, Any]:
    # One page of up to 1,000 steps (the API's maximum) holds every run these tests make.
    response = httpx.get(f"{query_url}/v1/runs/{run_id}", params={"steps_limit": 1000}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def shape(detail: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(s["seq"], s["step_type"], s["name"], s["status"]) for s in detail["steps"]]


def test_the_spec_snippets_store_exactly_what_they_say(live_ingest: str, live_query: str, tmp_path: Path) -> None:
    # Run as users do: a script started from the repository root with PYTHONPATH=. (only the URL differs).
    handler = "def handle_request():\n" + textwrap.indent(SPEC_FAILURES, "    ")
    script = "\n".join([
        SPEC_INSTRUMENTING.replace("http://localhost:8000", live_ingest),
        "first_run = run",
        "def call_external_api():",
        "    raise TimeoutError('upstream took too long')",
        handler,
        "handle_request()",
        "assert tracer.flush(10.0)",
        "tracer.shutdown(2.0)",
        "import json; s = tracer.stats()",
        "print(json.dumps([first_run.run_id, s.produced, s.delivered, s.dropped]))",
    ])
    path = tmp_path / "spec_usage.py"
    path.write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    result = subprocess.run([sys.executable, str(path)], cwd=ROOT, env={**env, "PYTHONPATH": "."},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    first_id, produced, delivered, dropped = json.loads(result.stdout)
    assert (delivered, dropped) == (produced, {})
    runs = httpx.get(f"{live_query}/v1/runs", timeout=10).json()["items"]
    assert len(runs) == 2
    (second_id,) = [r["run_id"] for r in runs if r["run_id"] != first_id]

    detail = run_detail(live_query, first_id)
    run = detail["run"]
    assert (run["agent_id"], run["agent_version"], run["environment"], run["status"]) == (
        "support-agent", "v1.0.0", "production", "success")
    assert shape(detail) == [(1, "plan", "analyze_query", "ok"), (2, "tool", "billing_api", "ok"),
                             (3, "respond", "generate_response", "ok")]
    assert detail["failure"] is None

    detail = run_detail(live_query, second_id)
    assert detail["run"]["status"] == "failure"
    assert shape(detail) == [(1, "plan", "analyze", "ok"), (2, "tool", "external_api", "error")]
    assert (detail["steps"][1]["error_class"], detail["steps"][1]["failure_code"]) == ("TimeoutError", "timeout")
    failure = detail["failure"]
    assert (failure["failure_type"], failure["failure_code"], failure["step_seq"], failure["message"]) == (
        "tool", "timeout", 2, "External API timeout after 30s")
    assert "upstream took too long" not in str(detail)


@pytest.mark.slow
def test_sixteen_threads_keep_unique_ordered_seqs_and_arrive_exactly_once(make_tracer: Make, live_ingest: str,
                                                                         db_url: str) -> None:
    # 16,000 steps are produced in well under a second, faster than any backend stores them: give the queue
    # room for all of them (overflow has its own test) so that this one is about order and exactly-once.
    tracer = make_tracer(live_ingest, flush_interval=0.2, max_queue_size=20_000)
    per_thread: dict[int, list[int]] = {}
    barrier = threading.Barrier(16)

    def worker(index: int, run: Any) -> None:
        barrier.wait()
        mine = []
        for _ in range(1000):
            with run.step("tool", f"worker_{index:02d}") as step:
                pass
            mine.append(step.seq)
        per_thread[index] = mine

    with tracer.start_run() as run:
        threads = [threading.Thread(target=worker, args=(i, run)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert tracer.flush(60.0), tracer.stats()
    stats = tracer.stats()
    assert (stats.produced, stats.delivered, stats.dropped) == (16_002, 16_002, {})

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select seq, name from steps where run_id = :r order by seq"),
                                {"r": run.run_id}).all()
            run_row = conn.execute(sa.text("select status, step_count from runs where run_id = :r"),
                                   {"r": run.run_id}).one()
    finally:
        engine.dispose()
    assert [seq for seq, _ in rows] == list(range(1, 16_001))  # unique, gap-free, each stored once
    assert tuple(run_row) == ("success", 16_000)
    for index, mine in per_thread.items():
        assert mine == sorted(mine)
        stored = [seq for seq, name in rows if name == f"worker_{index:02d}"]
        assert stored == mine


@pytest.fixture
def restartable_ingest(live_settings: Settings) -> Iterator[Callable[[], Any]]:
    """Start (and restart) a real Ingest API on one fixed loopback port; yields a function that starts it."""
    from agenttracer.server.ingest import create_app

    port = free_port()
    stack: list[Any] = []

    def start() -> Any:
        server = serve_on_port(create_app(live_settings), port)
        stack.append(server)
        return server

    yield start
    for server in stack:
        server.stop()


def test_a_real_server_restart_mid_run_stores_every_event_once(make_tracer: Make, restartable_ingest: Any,
                                                              live_query: str) -> None:
    server = restartable_ingest()
    tracer = make_tracer(server.url, max_backoff=0.3)
    worst = 0
    run = tracer.start_run().start()
    for phase in ("before", "during", "after"):
        if phase == "during":
            assert tracer.flush(10.0)
            server.stop()
        if phase == "after":
            time.sleep(0.5)  # a few failed attempts while the server is down
            server = restartable_ingest()
        for _ in range(200):
            t0 = time.perf_counter_ns()
            with run.step("tool", phase):
                pass
            worst = max(worst, time.perf_counter_ns() - t0)
    run.end()
    assert tracer.flush(15.0), tracer.stats()
    print(f"worst step on the agent thread across the restart: {worst / 1000:.0f} us")
    detail = run_detail(live_query, run.run_id)
    assert [s["seq"] for s in detail["steps"]] == list(range(1, 601))
    assert [s["name"] for s in detail["steps"]] == ["before"] * 200 + ["during"] * 200 + ["after"] * 200
    assert detail["run"]["status"] == "success"
    stats = tracer.stats()
    assert stats.retried >= 1 and (stats.delivered, stats.dropped) == (602, {})


@pytest.mark.parametrize("example", ["customer_support_agent.py", "agent_with_failures.py", "async_agent.py"])
def test_the_examples_run_against_a_live_server(example: str, live_ingest: str, live_query: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update({"PYTHONPATH": ".", "AGENTTRACER_API_URL": live_ingest, "AGENTTRACER_QUERY_URL": live_query})
    result = subprocess.run([sys.executable, f"examples/{example}"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # The hints it prints point at the Query API it was given, not at the default port.
    assert f"curl {live_query}/" in result.stdout or f"curl '{live_query}/" in result.stdout, result.stdout
    runs = httpx.get(f"{live_query}/v1/runs", params={"limit": 50}, timeout=10).json()["items"]
    assert runs, result.stdout
    assert "delivered" in result.stdout and "dropped 0" in result.stdout, result.stdout
    if example == "agent_with_failures.py":
        assert {r["failure_type"] for r in runs} >= {"tool", "model", "retrieval", "orchestration"}
    if example == "customer_support_agent.py":
        assert all(r["status"] == "success" for r in runs) and sum(r["retry_count"] for r in runs) >= 1


def test_the_tracers_project_names_where_its_runs_go(live_ingest: str, live_query: str) -> None:
    """Without keys, ``AgentTracer(project=…)`` (or AGENTTRACER_PROJECT) chooses the runs' project."""
    tracer = AgentTracer(agent_id="team-agent", agent_version="v1", environment="test", api_url=live_ingest,
                         project="team-x")
    with tracer.start_run() as run, run.step("tool", "lookup"):
        pass
    assert tracer.flush(10)
    tracer.shutdown(5)
    detail = run_detail(live_query, run.run_id)
    assert detail["run"]["project"] == "team-x" and len(detail["steps"]) == 1
    listed = httpx.get(f"{live_query}/v1/runs", params={"project": "team-x"}, timeout=10).json()["items"]
    assert [r["run_id"] for r in listed] == [run.run_id]
    with pytest.raises(ValueError, match="project"):
        AgentTracer(agent_id="team-agent", api_url=live_ingest, project="Team X")
