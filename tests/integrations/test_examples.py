"""The integration examples run as users run them (a script from the repository root) against live servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, ingest: str, query: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTTRACER_", "OPENAI_"))}
    env.update({"PYTHONPATH": ".", "AGENTTRACER_API_URL": ingest, "AGENTTRACER_QUERY_URL": query})
    result = subprocess.run([sys.executable, f"examples/{name}"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"curl '{query}/" in result.stdout, result.stdout
    return result.stdout


def runs(query: str, agent_id: str) -> list[dict[str, Any]]:
    return httpx.get(f"{query}/v1/runs", params={"agent_id": agent_id, "limit": 50}, timeout=10).json()["items"]


def test_the_langchain_example(live_ingest: str, live_query: str) -> None:
    out = run_example("langchain_agent.py", live_ingest, live_query)
    assert "dropped 0" in out, out
    found = runs(live_query, "langgraph-orders")
    assert sorted(r["status"] for r in found) == ["failure", "success", "success"]
    assert sum(r["retry_count"] for r in found) >= 2
    assert {r["failure_type"] for r in found} == {None, "tool"}


def test_the_openai_agents_example(live_ingest: str, live_query: str) -> None:
    out = run_example("openai_agents_agent.py", live_ingest, live_query)
    assert "dropped 0" in out, out
    found = runs(live_query, "agents-sdk-billing")
    assert sorted(r["status"] for r in found) == ["failure", "success"]
    assert {(r["failure_type"], r["failure_code"]) for r in found} == {
        (None, None), ("orchestration", "max_iterations")}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_otel_example(live_ingest: str, live_query: str) -> None:
    out = run_example("otel_exporter.py", live_ingest, live_query)
    assert "exported 4 spans, dropped 0" in out, out
    assert [r["agent_id"] for r in runs(live_query, "weather-agent")] == ["weather-agent"]
