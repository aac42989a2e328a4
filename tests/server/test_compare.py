"""GET /v1/compare over real HTTP on SQLite and PostgreSQL: significance, too-small samples, 422s."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from agenttracer.server.wire import CompareResponse
from tests.support.analytics_data import scenario, served_scenario
from tests.support.db import STORE_BACKENDS


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    base, candidate, tiny = scenario()
    with served_scenario(str(request.param), tmp_path_factory.mktemp("compare"), base + candidate + tiny) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        yield client


def _compare(api: httpx.Client, **params: str) -> CompareResponse:
    resp = api.get("/v1/compare", params=params)
    assert resp.status_code == 200, resp.text
    return CompareResponse.model_validate(resp.json())


def test_compare_flags_the_slower_flakier_tool(api: httpx.Client) -> None:
    c = _compare(api, agent_id="support-agent", base="v1", candidate="v2")
    assert (c.base.version, c.candidate.version, c.base.runs, c.candidate.runs) == ("v1", "v2", 100, 100)
    tool = next(s for s in c.step_types if s.step_type == "tool")
    assert tool.latency_ms.test.verdict == "significant"
    assert tool.latency_ms.test.p_value is not None and tool.latency_ms.test.p_value < c.alpha
    assert tool.latency_ms.candidate.p50 is not None and tool.latency_ms.base.p50 is not None
    assert 1.9 < tool.latency_ms.candidate.p50 / tool.latency_ms.base.p50 < 2.1
    assert tool.error_rate.test is not None and tool.error_rate.test.verdict == "significant"
    plan = next(s for s in c.step_types if s.step_type == "plan")
    assert plan.latency_ms.test.verdict == "not_significant"
    assert c.success_rate.delta == pytest.approx(-0.10)
    assert c.shapes[0].shape == ["plan", "retrieval", "tool", "respond"]
    assert "step_types.tool.latency_ms" in c.significant


def test_compare_with_five_runs_per_version_says_sample_too_small(api: httpx.Client) -> None:
    c = _compare(api, agent_id="tiny-agent", base="t1", candidate="t2")
    assert (c.base.runs, c.candidate.runs) == (5, 5)
    assert c.success_rate.test is not None and c.success_rate.test.verdict == "insufficient_data"
    assert all(s.latency_ms.test.verdict == "insufficient_data" for s in c.step_types)
    assert c.significant == []


def test_compare_window_and_environment_narrow_the_runs(api: httpx.Client) -> None:
    staging = _compare(api, agent_id="support-agent", base="v1", candidate="v2", environment="staging")
    assert staging.base.runs == staging.candidate.runs == 0
    early = _compare(api, agent_id="support-agent", base="v1", candidate="v2",
                     since="2026-11-24T08:00:00Z", until="2026-11-24T08:30:00Z")
    assert (early.base.runs, early.candidate.runs) == (30, 30)
    assert early.since is not None and early.until is not None


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"base": "v1", "candidate": "v2"}, "agent_id"),
        ({"agent_id": "support-agent", "candidate": "v2"}, "base"),
        ({"agent_id": "support-agent", "base": "v1"}, "candidate"),
        ({"agent_id": "support-agent", "base": "v1", "candidate": "v1"}, "candidate"),
        ({"agent_id": "support-agent", "base": "v1", "candidate": "v2", "since": "2026-11-25T00:00:00Z",
          "until": "2026-11-24T00:00:00Z"}, "until"),
        ({"agent_id": "support-agent", "base": "v1", "candidate": "v2", "until": "soon"}, "until"),
    ],
)
def test_bad_parameters_get_422_naming_the_parameter(api: httpx.Client, params: dict[str, str], param: str) -> None:
    resp = api.get("/v1/compare", params=params)
    assert resp.status_code == 422
    assert any(param in entry["loc"] for entry in resp.json()["detail"])


def test_openapi_describes_the_compare_response(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    op = spec["paths"]["/v1/compare"]["get"]
    assert op["summary"] and op["operationId"] == "compare_versions"
    sig = spec["components"]["schemas"]["SignificanceOut"]
    assert "too small" in sig["description"]
