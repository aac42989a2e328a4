"""GET /v1/stats over real HTTP on SQLite and PostgreSQL: the numbers, the filters and the 422s."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from agenttracer.server.query import create_app
from agenttracer.server.settings import Settings
from agenttracer.server.wire import StatsResponse
from agenttracer.store.sql.keys import create_key
from agenttracer.store.sql.schema.engine import make_engine
from tests.support.analytics_data import T0, scenario, served_scenario
from tests.support.db import STORE_BACKENDS
from tests.support.servers import serve_app


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    base, candidate, tiny = scenario()
    with served_scenario(str(request.param), tmp_path_factory.mktemp("stats"), base + candidate + tiny) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_stats_report_outcomes_latency_failures_and_retries(api: httpx.Client) -> None:
    base, candidate, _ = scenario()
    resp = api.get("/v1/stats", params={"agent_id": "support-agent"})
    assert resp.status_code == 200
    body = StatsResponse.model_validate(resp.json())
    assert (body.total_runs, body.finished_runs) == (202, 200)
    assert body.status_counts.model_dump() == {"running": 2, "success": 180, "failure": 20, "partial": 0}
    assert (body.success_rate, body.failure_rate) == (0.9, 0.1)
    durations = [r.duration_ms for r in base + candidate if r.duration_ms is not None]
    cuts = statistics.quantiles(durations, n=100, method="inclusive")
    assert body.run_latency_ms.p95 == pytest.approx(cuts[94], rel=1e-12)
    assert [(f.failure_type, f.count) for f in body.failures_by_type] == [("tool", 20)]
    assert body.retries.retry_steps == 40 and body.retries.runs_with_retries == 40
    assert body.top_failing_steps[0].name == "billing_api"
    tool = next(s for s in body.step_types if s.step_type == "tool")
    assert tool.share_of_run_time is not None and 0.5 < tool.share_of_run_time < 1


def test_stats_accept_the_runs_filters(api: httpx.Client) -> None:
    v2 = api.get("/v1/stats", params={"agent_id": "support-agent", "agent_version": "v2"}).json()
    assert v2["total_runs"] == 100 and v2["status_counts"]["failure"] == 15
    window = api.get("/v1/stats", params={
        "agent_id": "support-agent", "since": T0.isoformat(), "until": (T0 + timedelta(hours=1)).isoformat(),
    }).json()
    assert window["total_runs"] == 120
    assert window["timeline"]["bucket"] == "hour" and len(window["timeline"]["points"]) == 1
    every_run = [r for batch in scenario() for r in batch]
    timeouts = api.get("/v1/stats", params={"failure_code": "timeout"}).json()
    expected = sum(1 for r in every_run if r.failure and r.failure[1] == "timeout")
    assert timeouts["total_runs"] == timeouts["status_counts"]["failure"] == expected == 26  # 20 + tiny-agent's
    everything = api.get("/v1/stats").json()
    assert everything["total_runs"] == len(every_run) == 212


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "exploded"}, "status"),
        ({"since": "2026-11-25T10:00:00Z", "until": "2026-11-25T09:00:00Z"}, "until"),
        ({"since": "yesterday"}, "since"),
        ({"failure_code": "Not-A-Code"}, "failure_code"),
        ({"agent_id": "x" * 500}, "agent_id"),
    ],
)
def test_bad_parameters_get_422_naming_the_parameter(api: httpx.Client, params: dict[str, str], param: str) -> None:
    resp = api.get("/v1/stats", params=params)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert any(param in entry["loc"] for entry in detail), detail
    assert all(entry["msg"] for entry in detail)


def test_openapi_describes_the_stats_response(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    op = spec["paths"]["/v1/stats"]["get"]
    assert op["summary"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/StatsResponse")
    group = spec["components"]["schemas"]["StepGroupOut"]["properties"]
    assert "Latency attribution" in group["share_of_run_time"]["description"]


def test_stats_and_compare_need_a_read_key_once_keys_exist(db_url: str) -> None:
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    _, read_key = create_key(engine, "read", name="dashboard")
    _, ingest_key = create_key(engine, "ingest", name="agent")
    engine.dispose()
    compare = {"agent_id": "a", "base": "v1", "candidate": "v2"}
    with serve_app(create_app(Settings(database_url=db_url))) as url, httpx.Client(base_url=url, timeout=10) as c:
        for path, params in (("/v1/stats", {}), ("/v1/compare", compare)):
            assert c.get(path, params=params).status_code == 401
            assert c.get(path, params=params, headers={"Authorization": f"Bearer {ingest_key}"}).status_code == 403
            ok = c.get(path, params=params, headers={"X-API-Key": read_key})
            assert ok.status_code == 200, ok.text
