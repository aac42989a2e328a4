"""A killed agent's run becomes ``failure`` / ``orchestration`` / ``abandoned`` through the real servers.

``agenttracer up`` runs as a subprocess with a two-second run timeout on SQLite, PostgreSQL and ClickHouse
(chdb). An agent
subprocess — one using the SDK, one exporting spans with the stock OpenTelemetry OTLP exporter — starts
a run, delivers its first steps and is killed with SIGKILL before the run ends (no atexit flush, no root
span). The ingest process's sweep must then close the run, and the Query API's run detail and
``/v1/stats`` and the ingest ``/metrics`` must count it as an abandoned failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import free_port, serve_process

pytestmark = [pytest.mark.slow]

TIMEOUT_S = 2
SETTLE_DEADLINE_S = 30.0
IDENTITY = {"agent_version": "1.0", "environment": "ci"}

SDK_AGENT = """
    import sys, time
    from agenttracer import AgentTracer

    tracer = AgentTracer(agent_id="crashing-sdk-agent", agent_version="1.0", environment="ci", api_url=sys.argv[1])
    run = tracer.start_run().__enter__()
    with run.step("plan", "decide"):
        pass
    with run.step("tool", "lookup"):
        pass
    assert tracer.flush(10)
    print(run.run_id, flush=True)
    time.sleep(600)  # killed here, mid-run
"""

OTLP_AGENT = """
    import sys, time, uuid
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "crashing-otlp-agent", "service.version": "1.0",
                                "deployment.environment": "ci"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[1] + "/v1/traces")))
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent"}) as root:
        with tracer.start_as_current_span("execute_tool lookup", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}):
            pass
        assert provider.force_flush(10_000)
        print(uuid.UUID(int=root.get_span_context().trace_id), flush=True)
        time.sleep(600)  # killed here: the root span is never exported
"""


@pytest.fixture
def servers(store_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    # On chdb the `up` process holds the directory (both apps in one process); this test reads over HTTP only.
    db_url = store_url
    ingest_port, query_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update(AGENTTRACER_DATABASE_URL=db_url, AGENTTRACER_LOG_LEVEL="warning",
               AGENTTRACER_RUN_TIMEOUT_S=str(TIMEOUT_S))
    cmd = [sys.executable, "-m", "agenttracer", "up", "--no-ui",
           "--ingest-port", str(ingest_port), "--query-port", str(query_port)]
    with serve_process(cmd, env, f"http://127.0.0.1:{query_port}/health", tmp_path / "up.log"):
        yield f"http://127.0.0.1:{ingest_port}", f"http://127.0.0.1:{query_port}"


def start_and_kill(script: str, ingest_url: str, tmp_path: Path) -> str:
    """Run the agent until it has delivered its first steps and printed its run_id, then SIGKILL it."""
    path = tmp_path / "agent.py"
    path.write_text(textwrap.dedent(script))
    agent = subprocess.Popen([sys.executable, str(path), ingest_url], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None
        run_id = agent.stdout.readline().strip()
        assert run_id, agent.stderr.read() if agent.stderr else "the agent printed nothing"
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
    assert agent.returncode == -signal.SIGKILL
    return run_id


def settled(query_url: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_DEADLINE_S
    while True:
        response = httpx.get(f"{query_url}/v1/runs/{run_id}", timeout=10)
        assert response.status_code == 200, response.text
        detail: dict[str, Any] = response.json()
        if detail["run"]["status"] != "running" or time.monotonic() > deadline:
            return detail
        time.sleep(0.25)


def metric(ingest_url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{ingest_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.mark.parametrize(("script", "agent_id", "step_names", "source"), [
    (SDK_AGENT, "crashing-sdk-agent", ["decide", "lookup"], "sdk"),
    (OTLP_AGENT, "crashing-otlp-agent", ["lookup"], "otlp"),
], ids=["sdk", "otlp"])
def test_a_killed_agents_run_is_closed_as_abandoned_and_counted(
    servers: tuple[str, str], tmp_path: Path, script: str, agent_id: str, step_names: list[str], source: str
) -> None:
    ingest_url, query_url = servers
    run_id = start_and_kill(script, ingest_url, tmp_path)

    detail = settled(query_url, run_id)

    run = detail["run"]
    assert (run["status"], run["failure_type"], run["failure_code"]) == ("failure", "orchestration", "abandoned")
    assert run["agent_id"] == agent_id
    assert (run["source"], run["abandoned"]) == (source, True)  # the detail says whose verdict this is
    assert [s["name"] for s in detail["steps"]] == step_names
    # Ended at its last step's end, not when the server noticed.
    assert run["ended_at"] == max(s["ended_at"] for s in detail["steps"])
    assert detail["failure"]["failure_code"] == "abandoned" and detail["failure"]["step_seq"] is None

    stats = httpx.get(f"{query_url}/v1/stats", params={"agent_id": agent_id}, timeout=10).json()
    assert stats["status_counts"]["failure"] == 1 and stats["status_counts"]["running"] == 0
    assert [(f["failure_code"], f["count"]) for f in stats["failures_by_code"]] == [("abandoned", 1)]

    agent = {"project": "default", "agent_id": agent_id, "agent_version": "1.0"}
    assert metric(ingest_url, "agenttracer_runs_finished_total", status="failure", environment="ci", **agent) == 1
    assert metric(ingest_url, "agenttracer_run_failures_total", failure_type="orchestration",
                  failure_code="abandoned", **agent) == 1
    assert metric(ingest_url, "agenttracer_runs_abandoned_total") == 1
