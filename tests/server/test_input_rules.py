"""The input rules (model.py) end to end on every store (SQLite, PostgreSQL, ClickHouse): hostile events
are rejected on their own, the rest of their batch is stored, and every read endpoint still answers 200
correctly afterwards; hostile query parameters get a 422 naming the parameter and the rule, never a 5xx."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from agenttracer.model import EARLIEST_TIME, MAX_ATTEMPT, MAX_LATENCY_MS, MAX_SEQ
from agenttracer.server.settings import Settings
from agenttracer.store import open_store
from tests.support.events import failure, new_run_id, run_end, run_start, step


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of this module run on every store."""
    return Settings(database_url=store_url)


def post(base: str, events: list[Any]) -> httpx.Response:
    return httpx.post(f"{base}/v1/ingest", json={"events": events}, timeout=60)


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


NOW = datetime.now(timezone.utc)
RECENT = NOW - timedelta(hours=1)


def good_run(run_id: str, agent: str = "poison-test") -> list[dict[str, Any]]:
    start = RECENT
    return [
        run_start(run_id, agent_id=agent, started_at=iso(start)),
        step(run_id, 1, started_at=iso(start), ended_at=iso(start + timedelta(seconds=1)), latency_ms=1000.0),
        run_end(run_id, agent_id=agent, ended_at=iso(start + timedelta(seconds=2)), status="success"),
    ]


# (event builder, the field it breaks, the rule name): each is the form of an event that once broke
# the read side or answered 500 (issue 15), or a neighbour of one.
def _hostile(run_id: str) -> list[tuple[dict[str, Any], str, str]]:
    t = iso(RECENT)
    return [
        (run_start(run_id, started_at="9999-12-31T23:59:59.999999Z"), "started_at", "time_range"),
        (run_start(run_id, started_at="0001-01-01T00:00:00Z"), "started_at", "time_range"),
        (run_start(run_id, started_at="0001-01-01T00:00:00+01:00"), "started_at", "time_range"),
        (run_start(run_id, started_at="1969-12-31T23:59:59Z"), "started_at", "time_range"),
        (run_start(run_id, started_at=iso(NOW + timedelta(days=2))), "started_at", "time_range"),
        (run_end(run_id, ended_at="9999-12-31T23:59:59-01:00"), "ended_at", "time_range"),
        (step(run_id, 2, started_at=t, ended_at="9999-12-31T23:59:59.999999Z"), "ended_at", "time_range"),
        (step(run_id, 2, started_at=t, ended_at=t, latency_ms=1.7976931348623157e308), "latency_ms", "latency_range"),
        (step(run_id, 2, started_at=t, ended_at=t, latency_ms=MAX_LATENCY_MS + 1), "latency_ms", "latency_range"),
        (step(run_id, 2, started_at=t, ended_at=t, latency_ms=-1.0), "latency_ms", "latency_range"),
        (step(run_id, MAX_SEQ + 1, started_at=t, ended_at=t), "seq", "seq_range"),
        (step(run_id, 2, started_at=t, ended_at=t, attempt=MAX_ATTEMPT + 1), "attempt", "attempt_range"),
        (step(run_id, 2, started_at=t, ended_at=t, name="a\x00b"), "name", "control_characters"),
        (run_start(run_id, agent_id="agent\x00x", started_at=t), "agent_id", "control_characters"),
        (run_start(run_id, environment="prod\n", started_at=t), "environment", "control_characters"),
        (step(run_id, 2, started_at=t, ended_at=t, failure_code="timeout_x\n"), "failure_code", "failure_code_format"),
        # The sweep's code: a run it closed forgets that failure when reopened, so an agent may not send it.
        (failure(run_id, failure_type="orchestration", failure_code="abandoned"), "failure_code",
         "server_failure_code"),
        # Timestamps are ISO 8601 text only: numeric strings are not read as Unix times.
        (run_start(run_id, started_at="0"), "started_at", "timestamp_format"),
        (run_start(run_id, started_at="1765100000.5"), "started_at", "timestamp_format"),
        (step(run_id, 2, started_at=t, ended_at="1765100000"), "ended_at", "timestamp_format"),
        (run_end(run_id, ended_at=" 1765100000 "), "ended_at", "timestamp_format"),
    ]


def test_each_hostile_event_is_rejected_alone_naming_field_and_rule(live_ingest: str) -> None:
    good = new_run_id()
    hostile = _hostile(new_run_id())
    events = good_run(good) + [event for event, _, _ in hostile]
    resp = post(live_ingest, events)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    results = body["results"]
    assert [r["status"] for r in results[:3]] == ["accepted"] * 3
    for result, (_, field, code) in zip(results[3:], hostile, strict=True):
        assert result["status"] == "rejected", (field, code, result)
        assert {"field": field, "code": code} in [{"field": e["field"], "code": e["code"]} for e in result["errors"]]
        # Errors name field and rule, never the value.
        assert "\x00" not in str(result["errors"]) and "9999" not in str(result["errors"])
    assert body["accepted"] == 3 and body["rejected"] == len(hostile)


def test_the_timestamp_bounds_themselves_are_accepted(live_ingest: str) -> None:
    run_id = new_run_id()
    latest = NOW + timedelta(hours=23)  # inside the 24 h allowance with a margin for the test's own clock
    events = [
        run_start(run_id, started_at=iso(EARLIEST_TIME)),
        step(run_id, 1, started_at=iso(EARLIEST_TIME), ended_at=iso(latest), latency_ms=MAX_LATENCY_MS),
        run_end(run_id, ended_at=iso(latest), status="success"),
    ]
    resp = post(live_ingest, events)
    assert resp.status_code == 200, resp.text
    assert [r["status"] for r in resp.json()["results"]] == ["accepted"] * 3


def test_reads_stay_correct_after_hostile_events(live_ingest: str, live_query: str, store_url: str) -> None:
    good = new_run_id()
    assert post(live_ingest, good_run(good)).status_code == 200
    for event, _, _ in _hostile(new_run_id()):
        resp = post(live_ingest, [event])
        assert resp.status_code == 422, resp.text  # the only event was rejected: nothing stored
    # Extreme but accepted values: the bounds of every rule, in one run of another agent.
    edge = new_run_id()
    t = iso(RECENT)
    resp = post(
        live_ingest,
        [
            run_start(edge, agent_id="edge-agent", agent_version="v2", started_at=t),
            step(edge, MAX_SEQ, started_at=t, ended_at=t, latency_ms=MAX_LATENCY_MS, attempt=MAX_ATTEMPT),
            run_end(edge, agent_id="edge-agent", agent_version="v2", ended_at=iso(RECENT + timedelta(days=0.5)),
                    status="failure"),
        ],
    )
    assert resp.status_code == 200 and resp.json()["accepted"] == 3, resp.text
    # The earliest accepted time, then a rollup pass (what once made every unfiltered read slow or a 500).
    epoch = new_run_id()
    first = iso(EARLIEST_TIME)
    resp = post(
        live_ingest,
        [
            run_start(epoch, agent_id="epoch-agent", started_at=first),
            step(epoch, 1, started_at=first, ended_at=first, latency_ms=0.0),
            run_end(epoch, agent_id="epoch-agent", ended_at=first, status="success"),
        ],
    )
    assert resp.status_code == 200 and resp.json()["accepted"] == 3, resp.text
    store = open_store(store_url)
    try:
        store.refresh_rollups()
    finally:
        store.close()

    with httpx.Client(base_url=live_query, timeout=120) as client:
        runs = client.get("/v1/runs")
        assert runs.status_code == 200, runs.text
        assert {r["run_id"] for r in runs.json()["items"]} == {good, edge, epoch}

        stats = client.get("/v1/stats")
        assert stats.status_code == 200, stats.text
        data = stats.json()
        assert data["total_runs"] == 3
        assert data["status_counts"]["success"] == 2 and data["status_counts"]["failure"] == 1
        assert data["retries"]["total_steps"] == 3

        agents = client.get("/v1/agents")
        assert agents.status_code == 200, agents.text
        assert sorted(a["agent_id"] for a in agents.json()["items"]) == ["edge-agent", "epoch-agent", "poison-test"]

        assert post(live_ingest, good_run(new_run_id(), agent="edge-agent")).status_code == 200
        # The second run of edge-agent is v1.0.0 (the builder's default), the first v2.
        compare = client.get("/v1/compare", params={"agent_id": "edge-agent", "base": "v1.0.0", "candidate": "v2"})
        assert compare.status_code == 200, compare.text
        result = compare.json()
        assert result["base"]["runs"] == 1 and result["candidate"]["runs"] == 1
        assert result["candidate"]["run_latency_ms"]["p50"] == pytest.approx(0.5 * 86_400_000)

        detail = client.get(f"/v1/runs/{edge}")
        assert detail.status_code == 200, detail.text


EXTREME_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.999999Z",
    "1969-12-31T23:59:59Z",
    "2999-01-01T00:00:00Z",
    "99999999999999",
    "1765100000",  # numbers are not timestamps, as on the ingest side
    "1765100000.5",
    "0",
]


@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("value", EXTREME_TIMES)
def test_out_of_range_times_are_a_422_naming_the_parameter(live_query: str, param: str, value: str) -> None:
    with httpx.Client(base_url=live_query, timeout=60) as client:
        for path, extra in (("/v1/runs", {}), ("/v1/stats", {}), ("/v1/compare", COMPARE)):
            resp = client.get(path, params={**extra, param: value})
            assert resp.status_code == 422, (path, param, value, resp.text)
            locs = [tuple(d["loc"]) for d in resp.json()["detail"]]
            assert ("query", param) in locs, resp.text


COMPARE = {"agent_id": "a", "base": "v1", "candidate": "v2"}
TEXT_FILTERS = {
    "/v1/runs": ["agent_id", "agent_version", "environment", "failure_code", "step_name"],
    "/v1/stats": ["agent_id", "agent_version", "environment", "failure_code", "step_name"],
    "/v1/compare": ["agent_id", "base", "candidate", "environment"],
}


@pytest.mark.parametrize("bad", ["a\x00b", "\x00", "line\nbreak", "del\x7f", "tab\t"])
def test_control_characters_in_any_text_filter_are_a_422_naming_it(live_query: str, bad: str) -> None:
    with httpx.Client(base_url=live_query, timeout=60) as client:
        for path, params in TEXT_FILTERS.items():
            for param in params:
                query = {**(COMPARE if path == "/v1/compare" else {}), param: bad}
                resp = client.get(path + "?" + "&".join(f"{k}={quote(v)}" for k, v in query.items()))
                assert resp.status_code == 422, (path, param, resp.text)
                detail = resp.json()["detail"]
                assert ("query", param) in [tuple(d["loc"]) for d in detail], resp.text
                assert bad not in resp.text


@pytest.mark.parametrize(
    "cursor",
    [
        "eyJ0IjoiMDAwMS0wMS0wMVQwMDowMDowMCswMTowMCIsInIiOiJ4IiwiZiI6IngifQ",  # an unsealed forgery
        "eyJ0IjpudWxsfQ.AAAAAAAAAAAAAAAAAAAAAA",
        "a\x00b",
        "%",
        "é",
        "x" * 512,
    ],
)
def test_a_forged_cursor_is_a_422_never_a_500(live_query: str, cursor: str) -> None:
    resp = httpx.get(f"{live_query}/v1/runs", params={"cursor": cursor}, timeout=60)
    assert resp.status_code == 422, resp.text
    assert ("query", "cursor") in [tuple(d["loc"]) for d in resp.json()["detail"]]


def test_real_cursors_page_through_every_run(live_ingest: str, live_query: str) -> None:
    ids = {new_run_id() for _ in range(5)}
    assert post(live_ingest, [e for run_id in ids for e in good_run(run_id)]).status_code == 200
    seen: list[str] = []
    cursor = None
    with httpx.Client(base_url=live_query, timeout=60) as client:
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/runs", params=params).json()
            seen += [r["run_id"] for r in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert sorted(seen) == sorted(ids)
