"""Windows reaching far back over real HTTP, on SQLite, PostgreSQL and ClickHouse (chdb): one run sixteen years
before the rest and a window from 1970 cost no more than the data (the planning is bounded by it) and answer the same
numbers as the raw tables, from the rollups; /v1/agents and /v1/runs stay correct too."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from agenttracer.server.query import create_app
from agenttracer.server.settings import Settings
from agenttracer.store import open_store
from tests.support.rundata import T0, RunSpec, StepSpec, insert_runs
from tests.support.servers import serve_app

LONG_AGO = datetime(2010, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def url(store_url: str, store_backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # A small data set, answered from the rollups.
    if store_backend == "chdb":
        monkeypatch.setattr("agenttracer.store.clickhouse.read.stats_rollup.EXACT_MAX_RUNS", 0)
    else:
        monkeypatch.setattr("agenttracer.store.sql.read.stats_rollup.EXACT_MAX_RUNS", 0)
    specs = [RunSpec("agent-a" if i % 3 else "agent-b", "v1", "prod", T0 + timedelta(minutes=7 * i),
                     "success" if i % 4 else "failure", steps=[StepSpec(1, "llm", "gpt", latency_ms=10.0 + i)])
             for i in range(60)]
    specs.append(RunSpec("agent-a", "v0", "prod", LONG_AGO, "success", steps=[StepSpec(1, "tool", "lookup")]))
    insert_runs(store_url, specs)
    store = open_store(store_url)
    try:
        result = store.refresh_rollups()
    finally:
        store.close()
    assert result.hours > 1 and result.dirty_left == 0
    return store_url


@pytest.mark.parametrize("since", ["1970-01-01T00:00:00Z", "2009-12-31T23:30:00Z", None])
def test_stats_from_far_back_answer_every_run_from_the_rollups(url: str, since: str | None) -> None:
    params = {"since": since} if since else {}
    with serve_app(create_app(Settings(database_url=url))) as base, httpx.Client(base_url=base, timeout=30) as c:
        body = c.get("/v1/stats", params=params)
        assert body.status_code == 200, body.text
        stats = body.json()
        assert stats["total_runs"] == 61 and stats["status_counts"]["failure"] == 15
        assert stats["latency_exact"] is False  # the rollup path answered
        assert stats["timeline"]["bucket"] == "day"
        assert sum(p["runs"] for p in stats["timeline"]["points"]) == 61
        agents = c.get("/v1/agents").json()["items"]
        assert sum(a["run_count"] for a in agents) == 61
        assert {v["agent_version"] for a in agents for v in a["versions"]} == {"v0", "v1"}
        runs = c.get("/v1/runs", params={**params, "limit": 100}).json()["items"]
        assert len(runs) == 61
