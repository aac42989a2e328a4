"""Latency attribution over real HTTP on SQLite, PostgreSQL and ClickHouse (chdb): nested SDK runs and OTLP
traces — parents, children, grandchildren, parallel children, steps arriving before their parents — give
per-type self times that match a hand computation, and shares of run time that add up to 1 with the
untraced remainder, both from the raw tables and from the rollups."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from agenttracer.server import ingest, query
from agenttracer.server.settings import Settings
from agenttracer.server.wire import StatsResponse
from agenttracer.store import open_store
from agenttracer.store.sql.rollup import selftime
from tests.support.servers import serve_app

# Three hours back, so that the refresher rolls the hour up; whole milliseconds, so that sums are exact.
T0 = datetime.now(timezone.utc).replace(minute=10, second=0, microsecond=0) - timedelta(hours=3)
HOUR_START = T0.replace(minute=0)
WINDOW = {"since": (HOUR_START - timedelta(hours=1)).isoformat(),
          "until": (HOUR_START + timedelta(hours=2)).isoformat()}


def _iso(ms: float) -> str:
    return (T0 + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


# An SDK run of 100 ms: plan 0–10; an agent loop 10–90 with an llm call 12–30 and, in parallel from 25, a tool
# call 25–50 that itself retrieves 30–40; respond 92–98. By hand (the innermost running steps share a moment):
#   0–10 plan · 10–12 agent · 12–25 llm · 25–30 llm and tool, 2.5 each · 30–40 retrieval · 40–50 tool ·
#   50–90 agent · 90–92 untraced · 92–98 respond · 98–100 untraced
SDK_STEPS = [  # seq, parent, type, name, start, end
    (1, None, "plan", "plan", 0, 10),
    (2, None, "other", "agent_loop", 10, 90),
    (3, 2, "llm", "gpt", 12, 30),
    (4, 2, "tool", "search", 25, 50),
    (5, 4, "retrieval", "kb", 30, 40),
    (6, None, "respond", "answer", 92, 98),
]
SDK_SELF = {"plan": 10.0, "other": 42.0, "llm": 15.5, "tool": 12.5, "retrieval": 10.0, "respond": 6.0}
SDK_UNTRACED = 4.0


def _sdk_batches(run_id: str) -> list[list[dict[str, Any]]]:
    ident = {"agent_id": "nested-sdk", "agent_version": "1", "environment": "test"}
    steps = {
        seq: {"type": "step", "run_id": run_id, "seq": seq, "step_type": t, "name": name, "started_at": _iso(a),
              "ended_at": _iso(b), "latency_ms": float(b - a), "status": "ok", "attempt": 1,
              **({"parent_seq": parent} if parent else {})}
        for seq, parent, t, name, a, b in SDK_STEPS
    }
    # Children (and the grandchild) before their parents and before the run's start; the end last.
    return [
        [steps[5], steps[3]],
        [steps[4], steps[6], {"type": "run_start", "run_id": run_id, "started_at": _iso(0), **ident}],
        [steps[2], steps[1], {"type": "run_end", "run_id": run_id, "ended_at": _iso(100), "status": "success",
                              **ident}],
    ]


# An OTLP trace of 100 ms (the root agent span is the run): llm 1–10; tools 11–20 and 21–30; a chain 31–60
# around a retriever 32–50; parallel tools 60–80 and 70–90. By hand: llm 9; tools 9 + 9 + 15 + 15 = 48;
# the chain (other) 29 − 18 = 11; retrieval 18; untraced 0–1, 10–11, 20–21, 30–31 and 90–100 = 14.
OTLP_SELF = {"llm": 9.0, "tool": 48.0, "other": 11.0, "retrieval": 18.0}
OTLP_UNTRACED = 14.0


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _span(trace: str, span_id: str, name: str, start: int, end: int, parent: str = "", **attrs: str) -> dict[str, Any]:
    t0 = int(T0.timestamp() * 1000)
    out = {"traceId": trace, "spanId": span_id, "name": name, "kind": 1,
           "startTimeUnixNano": str((t0 + start) * 1_000_000), "endTimeUnixNano": str((t0 + end) * 1_000_000),
           "attributes": [_attr(k.replace("__", "."), v) for k, v in attrs.items()], "status": {"code": 1}}
    if parent:
        out["parentSpanId"] = parent
    return out


def _otlp_requests(trace: str) -> list[dict[str, Any]]:
    root = "a000000000000001"
    tool = {"gen_ai__operation__name": "execute_tool"}
    spans = {
        "root": _span(trace, root, "invoke_agent nested", 0, 100, gen_ai__operation__name="invoke_agent",
                      gen_ai__agent__name="nested-otlp"),
        "llm": _span(trace, "b000000000000002", "chat", 1, 10, root, gen_ai__operation__name="chat"),
        "t1": _span(trace, "c000000000000003", "execute_tool a", 11, 20, root, gen_ai__tool__name="a", **tool),
        "t2": _span(trace, "d000000000000004", "execute_tool b", 21, 30, root, gen_ai__tool__name="b", **tool),
        "chain": _span(trace, "e000000000000005", "RunnableSequence", 31, 60, root,
                       openinference__span__kind="CHAIN"),
        "ret": _span(trace, "f000000000000006", "Retriever", 32, 50, "e000000000000005",
                     openinference__span__kind="RETRIEVER"),
        "p1": _span(trace, "1000000000000007", "execute_tool p", 60, 80, root, gen_ai__tool__name="p", **tool),
        "p2": _span(trace, "2000000000000008", "execute_tool q", 70, 90, root, gen_ai__tool__name="q", **tool),
    }

    def request(*names: str) -> dict[str, Any]:
        scope = [{"scope": {"name": "hand"}, "spans": [spans[n] for n in names]}]
        return {"resourceSpans": [{"resource": {"attributes": [_attr("service.name", "nested-otlp")]},
                                   "scopeSpans": scope}]}

    # The grandchild and parallel children first, the chain that is their parent later, the root last.
    return [request("ret", "p1", "t1"), request("p2", "chain", "llm", "t2"), request("root")]


def _load(ingest: str, runs: int) -> None:
    for i in range(runs):
        for batch in _sdk_batches(str(uuid.UUID(int=i + 1, version=4))):
            response = httpx.post(f"{ingest}/v1/ingest", json={"events": batch}, timeout=30)
            assert response.status_code == 200, response.text
            assert all(r["status"] != "rejected" for r in response.json()["results"]), response.text
        for doc in _otlp_requests(f"{i + 1:032x}"):
            response = httpx.post(f"{ingest}/v1/traces", json=doc, timeout=30)
            assert response.status_code == 200, response.text


def _stats(query: str, agent_id: str) -> StatsResponse:
    response = httpx.get(f"{query}/v1/stats", params={"agent_id": agent_id, **WINDOW}, timeout=30)
    assert response.status_code == 200, response.text
    return StatsResponse.model_validate(response.json())


def _assert_attribution(body: StatsResponse, runs: int, expected: dict[str, float], untraced: float) -> None:
    assert body.finished_runs == runs
    assert body.run_time.total_ms == pytest.approx(100.0 * runs)
    assert {g.step_type: g.self_time_ms for g in body.step_types} == pytest.approx(
        {t: ms * runs for t, ms in expected.items()})
    assert body.run_time.untraced_ms == pytest.approx(untraced * runs)
    shares = [g.share_of_run_time or 0.0 for g in body.step_types]
    assert body.run_time.untraced_share is not None
    assert sum(shares) + body.run_time.untraced_share == pytest.approx(1.0, abs=1e-9)
    # Each type's own total latency still counts nested steps inside their parents.
    other = next(g for g in body.step_types if g.step_type == "other")
    assert other.total_latency_ms > other.self_time_ms


RUNS = 3


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of tests/support/servers.py on every store."""
    return Settings(database_url=store_url)


def _roll_up(url: str) -> None:
    store = open_store(url)
    try:
        store.refresh_rollups()
    finally:
        store.close()


def _answer_from_rollups(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stats on this small data set come from the rollups (each store's exact-path threshold set to 0)."""
    if url.startswith("chdb:"):
        monkeypatch.setattr("agenttracer.store.clickhouse.read.stats_rollup.EXACT_MAX_RUNS", 0)
    else:
        monkeypatch.setattr("agenttracer.store.sql.read.stats_rollup.EXACT_MAX_RUNS", 0)


def test_nested_sdk_runs_and_otlp_traces_add_up_to_their_duration(
    live_ingest: str, live_query: str, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(live_ingest, RUNS)
    for agent, expected, untraced in (("nested-sdk", SDK_SELF, SDK_UNTRACED), ("nested-otlp", OTLP_SELF,
                                                                             OTLP_UNTRACED)):
        exact = _stats(live_query, agent)
        assert exact.latency_exact
        _assert_attribution(exact, RUNS, expected, untraced)

    # The same numbers from the rollups, once the hour is rolled up.
    _roll_up(store_url)
    _answer_from_rollups(store_url, monkeypatch)
    for agent, expected, untraced in (("nested-sdk", SDK_SELF, SDK_UNTRACED), ("nested-otlp", OTLP_SELF,
                                                                             OTLP_UNTRACED)):
        rolled = _stats(live_query, agent)
        assert not rolled.latency_exact
        _assert_attribution(rolled, RUNS, expected, untraced)


def test_a_late_parent_changes_the_rolled_up_attribution(
    live_ingest: str, live_query: str, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = str(uuid.UUID(int=99, version=4))
    first, second, third = _sdk_batches(run_id)
    for batch in (first, second, [e for e in third if e["type"] != "step"]):
        assert httpx.post(f"{live_ingest}/v1/ingest", json={"events": batch}, timeout=30).status_code == 200
    _answer_from_rollups(store_url, monkeypatch)
    _roll_up(store_url)
    before = _stats(live_query, "nested-sdk")
    assert not before.latency_exact
    # Without the agent loop and the plan, their children are top level and the gaps untraced.
    assert {g.step_type for g in before.step_types} == {"llm", "tool", "retrieval", "respond"}
    assert before.run_time.untraced_ms == pytest.approx(100 - 15.5 - 12.5 - 10 - 6)
    late = [e for e in third if e["type"] == "step"]
    assert httpx.post(f"{live_ingest}/v1/ingest", json={"events": late}, timeout=30).status_code == 200
    _roll_up(store_url)
    _assert_attribution(_stats(live_query, "nested-sdk"), 1, SDK_SELF, SDK_UNTRACED)


def test_runs_split_across_fetched_chunks_are_summed_whole(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQL stores only: the chunked step stream (and PostgreSQL's server-side cursor) is SQL machinery; the
    ClickHouse store reads a sample's steps in one statement."""
    # Step rows stream in chunks; a run whose rows straddle two chunks must still be attributed as one run.
    monkeypatch.setattr(selftime, "CHUNK_ROWS", 4)  # six steps per SDK run, eight per trace
    monkeypatch.setattr(selftime, "PG_FETCH_ALL_MAX", 0)  # PostgreSQL's server-side cursor too
    settings = Settings(database_url=db_url)
    with serve_app(ingest.create_app(settings)) as live_ingest, serve_app(query.create_app(settings)) as live_query:
        _load(live_ingest, RUNS)
        for agent, expected, untraced in (("nested-sdk", SDK_SELF, SDK_UNTRACED), ("nested-otlp", OTLP_SELF,
                                                                                 OTLP_UNTRACED)):
            _assert_attribution(_stats(live_query, agent), RUNS, expected, untraced)
        _roll_up(db_url)
        _answer_from_rollups(db_url, monkeypatch)
        _assert_attribution(_stats(live_query, "nested-sdk"), RUNS, SDK_SELF, SDK_UNTRACED)
