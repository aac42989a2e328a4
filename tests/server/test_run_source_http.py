"""Through the real Ingest API on SQLite, PostgreSQL and ClickHouse (chdb): a run written over one path refuses the
other's writes — ``/v1/ingest`` answers each refused event with field, rule and code, ``/v1/traces`` counts the
refused spans in ``partial_success`` with the reason — and the other events of both requests are stored."""

from __future__ import annotations

import httpx
import pytest

from agenttracer.server.settings import Settings
from tests.server.otlp_support import run_detail
from tests.server.test_otlp_http import RUN_ID, TOOL_OK, post_json, request, span
from tests.support import events as ev


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of tests/support/servers.py on every store."""
    return Settings(database_url=store_url)


def test_sdk_events_for_an_otlp_run_are_refused_one_by_one(live_ingest: str, live_query: str) -> None:
    assert post_json(live_ingest, request(TOOL_OK)).status_code == 200
    sdk_run = ev.new_run_id()
    batch = [ev.run_start(sdk_run), ev.step(RUN_ID, 1), ev.run_end(RUN_ID), ev.step(sdk_run, 1)]

    response = httpx.post(f"{live_ingest}/v1/ingest", json={"events": batch}, timeout=30)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected", "accepted"]
    for refused in results[1:3]:
        assert refused["errors"] == [{
            "field": "run_id", "code": "conflict",
            "rule": "belongs to a run sent over OTLP (POST /v1/traces); a run is written by one source only",
        }]
    detail = run_detail(live_query, RUN_ID)
    assert [s["name"] for s in detail["steps"]] == ["search"] and detail["run"]["status"] == "running"


def test_spans_for_an_sdk_run_are_counted_in_partial_success(live_ingest: str, live_query: str) -> None:
    response = httpx.post(f"{live_ingest}/v1/ingest", json={"events": [ev.run_start(RUN_ID)]}, timeout=30)
    assert response.json()["accepted"] == 1
    other_trace = "6b8efff798038103d269b633813fc60c"
    doc = request(TOOL_OK, span("e000000000000009", "execute_tool search", 40, 50, parent="a000000000000001",
                                trace=other_trace, gen_ai__operation__name="execute_tool"))

    answer = post_json(live_ingest, doc).json()

    assert answer["partialSuccess"]["rejectedSpans"] == "1"
    assert answer["partialSuccess"]["errorMessage"].startswith(
        "1 spans refused: traceId is the run_id of a run sent by the SDK (POST /v1/ingest); "
        "a run is written by one source only. "
    )
    assert run_detail(live_query, RUN_ID)["steps"] == []
    assert len(run_detail(live_query, "6b8efff7-9803-8103-d269-b633813fc60c")["steps"]) == 1
