"""/v1/traces holds the SDK path's text rule (model.py ``TEXT_FIELD_LIMITS``, control characters) on every
store (SQLite, PostgreSQL, ClickHouse): a span whose agent version, environment, service name or span
name would not fit its column, or holds a control character, is refused alone with a reason in
``partial_success`` — never a 500 that loses the whole request, never a value stored that no filter can
find again."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agenttracer.server.settings import Settings
from tests.server.otlp_support import run_detail, runs
from tests.server.test_otlp_http import attr, post_json, span


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of this module run on every store."""
    return Settings(database_url=store_url)


GOOD_TRACE = "7a000000000000000000000000000001"
BAD_TRACE = "7b000000000000000000000000000002"


def _resource(**attrs: str) -> dict[str, Any]:
    base = {"service.name": "rules-agent", "service.version": "1.0", "deployment.environment.name": "qa"}
    return {"attributes": [attr(k, v) for k, v in {**base, **attrs}.items()]}


def _request(*groups: tuple[dict[str, Any], list[dict[str, Any]]]) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": res, "scopeSpans": [{"spans": spans}]} for res, spans in groups]}


def _good_trace() -> list[dict[str, Any]]:
    return [
        span("7a00000000000001", "invoke_agent ok", 0, 50, trace=GOOD_TRACE, gen_ai__operation__name="invoke_agent"),
        span("7a00000000000002", "chat", 1, 10, parent="7a00000000000001", trace=GOOD_TRACE,
             gen_ai__operation__name="chat"),
    ]


@pytest.mark.parametrize(
    ("resource", "field"),
    [
        ({"service.version": "v" * 65}, "resource.attributes[service.version]"),
        ({"service.version": "v" * 128}, "resource.attributes[service.version]"),
        ({"deployment.environment.name": "e" * 100}, "resource.attributes[deployment.environment.name]"),
        ({"deployment.environment": "prod\tblue"}, "resource.attributes[deployment.environment]"),
        ({"service.name": "agent\nname"}, "resource.attributes[service.name]"),
    ],
)
def test_a_resource_naming_the_run_outside_the_rule_refuses_its_spans_alone(
    live_ingest: str, live_query: str, resource: dict[str, str], field: str
) -> None:
    bad = [span("7b00000000000001", "invoke_agent bad", 0, 50, trace=BAD_TRACE, gen_ai__operation__name="invoke_agent")]
    response = post_json(live_ingest, _request((_resource(), _good_trace()), (_resource(**resource), bad)))
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert field in partial["errorMessage"] and "characters" in partial["errorMessage"]
    assert len(run_detail(live_query, "7a000000-0000-0000-0000-000000000001")["steps"]) == 1
    assert httpx.get(f"{live_query}/v1/runs/7b000000-0000-0000-0000-000000000002").status_code == 404


@pytest.mark.parametrize(
    ("attrs", "name", "field"),
    [
        ({"gen_ai.agent.version": "9" * 65}, "invoke_agent v", "attributes[gen_ai.agent.version]"),
        ({"gen_ai.agent.version": "1.0\r"}, "invoke_agent v", "attributes[gen_ai.agent.version]"),
        ({"gen_ai.agent.name": "planner\t2"}, "invoke_agent p", "attributes[gen_ai.agent.name]"),
        ({}, "chat\tgpt", "name"),
        ({}, "line one\nline two", "name"),
    ],
)
def test_a_span_outside_the_text_rule_is_refused_alone(
    live_ingest: str, live_query: str, attrs: dict[str, str], name: str, field: str
) -> None:
    bad = span("7b00000000000002", name, 2, 9, parent="7a00000000000001", trace=GOOD_TRACE,
               gen_ai__operation__name="invoke_agent", **{k.replace(".", "__"): v for k, v in attrs.items()})
    response = post_json(live_ingest, _request((_resource(), [*_good_trace(), bad])))
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1 and f"spans[2].{field}" in partial["errorMessage"]
    assert [s["name"] for s in run_detail(live_query, "7a000000-0000-0000-0000-000000000001")["steps"]] == ["chat"]


def test_the_longest_values_that_fit_are_stored_and_can_be_filtered_on(live_ingest: str, live_query: str) -> None:
    version, environment = "v" * 64, "e" * 64
    response = post_json(live_ingest, _request(
        (_resource(**{"service.version": version, "deployment.environment.name": environment}), _good_trace())))
    assert response.status_code == 200 and "partialSuccess" not in response.json(), response.text
    (run,) = runs(live_query, version=version, environment=environment)
    assert run["run_id"] == "7a000000-0000-0000-0000-000000000001"


def test_a_label_with_a_control_character_is_dropped_not_stored(live_ingest: str, live_query: str) -> None:
    chat = span("7a00000000000002", "chat", 1, 10, parent="7a00000000000001", trace=GOOD_TRACE,
                gen_ai__operation__name="chat", gen_ai__request__model="gpt\r4", gen_ai__provider__name="openai")
    response = post_json(live_ingest, _request((_resource(), [_good_trace()[0], chat])))
    assert response.status_code == 200, response.text
    assert "1 attribute keys" in response.json()["partialSuccess"]["errorMessage"]
    (step,) = run_detail(live_query, "7a000000-0000-0000-0000-000000000001")["steps"]
    assert "model" not in step["meta"] and step["meta"]["provider"] == "openai"
