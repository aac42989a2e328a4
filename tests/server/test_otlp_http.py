"""/v1/traces over real HTTP with hand-written OTLP/JSON and protobuf: split and out-of-order traces,
replays, partial success, auth, and every kind of bad request (4xx, never 5xx). SQLite, PostgreSQL and
ClickHouse (chdb)."""

from __future__ import annotations

import gzip
import os
import time
import zlib
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agenttracer.model import MAX_BATCH_BYTES
from agenttracer.server import ingest
from agenttracer.server.settings import Settings
from agenttracer.store.interface import Store
from tests.server.otlp_support import assert_no_canary, run_detail, runs, server_log, stored_text
from tests.support.servers import serve_app

CANARY = "qqsecretcanary"
TRACE = "5b8efff798038103d269b633813fc60c"
RUN_ID = "5b8efff7-9803-8103-d269-b633813fc60c"
T0 = (int(time.time()) - 60) * 1_000_000_000
MS = 1_000_000


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of tests/support/servers.py on every store."""
    return Settings(database_url=store_url)


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # OTLP/JSON: 64-bit ints as strings
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [{"stringValue": v} for v in value]}}}
    return {"key": key, "value": {"stringValue": value}}


def span(span_id: str, name: str, start_ms: int, end_ms: int, parent: str = "", error: bool = False,
         trace: str = TRACE, **attrs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(T0 + start_ms * MS),
        "endTimeUnixNano": str(T0 + end_ms * MS),
        "attributes": [attr(k.replace("__", "."), v) for k, v in attrs.items()],
        "status": {"code": 2, "message": f"{CANARY} status message"} if error else {"code": 1},
    }
    if parent:
        out["parentSpanId"] = parent
    if error:
        out["events"] = [
            {
                "name": "exception",
                "timeUnixNano": str(T0 + end_ms * MS),
                "attributes": [
                    attr("exception.type", "httpx.ReadTimeout"),
                    attr("exception.message", f"{CANARY} exception message"),
                    attr("exception.stacktrace", f"Traceback {CANARY}"),
                ],
            }
        ]
    return out


def request(*spans: dict[str, Any]) -> dict[str, Any]:
    resource = {
        "attributes": [
            attr("service.name", "json-agent"),
            attr("service.version", "9.9.9"),
            attr("deployment.environment.name", "qa"),
            attr("host.name", f"{CANARY}-host"),
        ]
    }
    scope_spans = [{"scope": {"name": "hand"}, "spans": list(spans)}]
    return {"resourceSpans": [{"resource": resource, "scopeSpans": scope_spans}]}


def post_json(url: str, doc: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/traces", json=doc, headers=headers, timeout=30)


# Root agent span a; under it: llm b, tool c (fails), tool d (retry of c, ok), chain e with retriever f.
ROOT = span("a000000000000001", "invoke_agent planner", 0, 100, gen_ai__operation__name="invoke_agent",
            gen_ai__agent__name="planner", gen_ai__agent__version="3.0", gen_ai__input__messages=f"{CANARY} hi",
            gen_ai__aggregated_usage__input_tokens=40)
LLM = span("b000000000000002", "chat gpt-4o", 1, 10, parent="a000000000000001", gen_ai__operation__name="chat",
           gen_ai__request__model="gpt-4o", gen_ai__usage__input_tokens=40, gen_ai__usage__output_tokens=7,
           gen_ai__response__finish_reasons=["tool_calls"], gen_ai__output__messages=f"{CANARY} out")
TOOL_FAIL = span("c000000000000003", "execute_tool search", 11, 20, parent="a000000000000001", error=True,
                 gen_ai__operation__name="execute_tool", gen_ai__tool__name="search",
                 gen_ai__tool__call__arguments=f'{{"q": "{CANARY}"}}')
TOOL_OK = span("d000000000000004", "execute_tool search", 21, 30, parent="a000000000000001",
               gen_ai__operation__name="execute_tool", gen_ai__tool__name="search",
               gen_ai__tool__call__result=f"{CANARY} result")
CHAIN = span("e000000000000005", "RunnableSequence", 31, 60, parent="a000000000000001",
             openinference__span__kind="CHAIN", input__value=f"{CANARY} input")
RETRIEVER = span("f000000000000006", "VectorStoreRetriever", 32, 50, parent="e000000000000005",
                 openinference__span__kind="RETRIEVER", retrieval__documents=f"{CANARY} doc")


def test_a_trace_split_out_of_order_and_replayed_settles_once(
    live_ingest: str, live_query: str, store_url: str
) -> None:
    with server_log() as log:
        # The innermost spans first (BatchSpanProcessor exports at span end), the root last.
        first = post_json(live_ingest, request(RETRIEVER, TOOL_FAIL))
        assert first.status_code == 200 and first.headers["content-type"] == "application/json"
        partial = first.json().get("partialSuccess", {})
        assert int(partial.get("rejectedSpans", 0)) == 0 and "dropped" in partial["errorMessage"]
        assert CANARY not in first.text

        (running,) = runs(live_query, agent_id="json-agent")
        assert running["run_id"] == RUN_ID and running["status"] == "running"
        assert running["started_at"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(T0 / 1e9)))

        assert post_json(live_ingest, request(CHAIN, LLM, TOOL_OK)).status_code == 200
        detail = run_detail(live_query, RUN_ID)
        assert detail["run"]["status"] == "running"
        assert [s["name"] for s in detail["steps"]] == [
            "chat gpt-4o", "search", "search", "RunnableSequence", "VectorStoreRetriever"
        ]
        assert post_json(live_ingest, request(ROOT)).status_code == 200
        # Replays of any part change nothing.
        for doc in (request(ROOT, LLM), request(RETRIEVER, TOOL_FAIL, CHAIN, TOOL_OK)):
            assert post_json(live_ingest, doc).status_code == 200

    detail = run_detail(live_query, RUN_ID)
    run = detail["run"]
    assert (run["agent_id"], run["agent_version"], run["environment"]) == ("planner", "3.0", "qa")
    assert run["status"] == "success"  # the failed tool call was retried successfully
    assert (run["step_count"], run["error_step_count"], run["retry_count"]) == (5, 1, 1)
    assert run["duration_ms"] == pytest.approx(100.0)
    shape = [(s["seq"], s["step_type"], s["name"], s["status"], s["attempt"], s["retry_of_seq"], s["parent_seq"])
             for s in detail["steps"]]
    # Start order; each span keeps the seq of its arrival (the first request's two spans are 1 and 2),
    # and the retriever, stored before its chain, got its parent when the chain arrived.
    assert shape == [
        (3, "llm", "chat gpt-4o", "ok", 1, None, None),
        (1, "tool", "search", "error", 1, None, None),
        (4, "tool", "search", "ok", 2, 1, None),
        (5, "other", "RunnableSequence", "ok", 1, None, None),
        (2, "retrieval", "VectorStoreRetriever", "ok", 1, None, 5),
    ]
    failed = detail["steps"][1]
    assert (failed["error_class"], failed["failure_code"]) == ("httpx.ReadTimeout", "timeout")
    assert detail["steps"][0]["meta"] == {
        "operation": "chat", "model": "gpt-4o", "tokens_in": 40, "tokens_out": 7, "finish_reasons": ["tool_calls"]
    }
    assert run["meta"]["tokens_in"] == 40 and run["meta"]["service"] == "json-agent"
    # Dropped by key: each content attribute, the exception message and stack, the host name.
    assert detail["steps"][0]["meta_removed"] == 1 and detail["steps"][1]["meta_removed"] == 3
    assert run["meta_removed"] == 1 + 1 + (1 + 3 + 1 + 1 + 1)  # root + resource + the five steps

    stored = stored_text(store_url)
    assert "VectorStoreRetriever" in stored
    assert_no_canary(CANARY, stored, log.getvalue())

    metrics = httpx.get(f"{live_ingest}/metrics").text
    assert 'agenttracer_otlp_spans_total{outcome="accepted"} 6.0' in metrics
    assert 'agenttracer_otlp_spans_total{outcome="duplicate"} 6.0' in metrics
    finished = [line for line in metrics.splitlines() if line.startswith("agenttracer_runs_finished_total{")]
    assert finished == [
        'agenttracer_runs_finished_total{agent_id="planner",agent_version="3.0",environment="qa",project="default",'
        'status="success"} 1.0'
    ]
    steps = [line for line in metrics.splitlines() if line.startswith("agenttracer_step_latency_seconds_count{")]
    assert any('step_type="tool"' in line and line.endswith(" 2.0") for line in steps), steps
    assert CANARY not in metrics


def test_a_failing_root_and_an_unrecovered_step(live_ingest: str, live_query: str) -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    root = span("1000000000000001", "invoke_agent x", 0, 50, error=True, trace=trace,
                gen_ai__operation__name="invoke_agent", error__type="rate_limited")
    tool = span("1000000000000002", "execute_tool pay", 1, 20, parent="1000000000000001", error=True,
                trace=trace, gen_ai__operation__name="execute_tool", gen_ai__tool__name="pay")
    llm = span("1000000000000003", "chat m", 21, 40, parent="1000000000000001", trace=trace,
               gen_ai__operation__name="chat")
    assert post_json(live_ingest, request(tool, llm, root)).status_code == 200
    detail = run_detail(live_query, "0af76519-16cd-43dd-8448-eb211c80319c")
    assert detail["run"]["status"] == "failure"
    assert detail["run"]["agent_id"] == "json-agent"  # no agent name on the root: the service
    failure = detail["failure"]
    assert (failure["failure_type"], failure["failure_code"], failure["step_seq"]) == ("tool", "timeout", 1)

    # A root that fails with no failing step: an orchestration failure with the root's error.type.
    trace = "0af7651916cd43dd8448eb211c80319d"
    root = span("2000000000000001", "invoke_agent y", 0, 50, error=True, trace=trace,
                gen_ai__operation__name="invoke_agent", error__type="rate_limited")
    assert post_json(live_ingest, request(root)).status_code == 200
    detail = run_detail(live_query, "0af76519-16cd-43dd-8448-eb211c80319d")
    assert (detail["failure"]["failure_type"], detail["failure"]["failure_code"]) == ("orchestration", "rate_limited")
    assert detail["steps"] == []


def test_protobuf_gzip_and_deflate_answer_in_protobuf(live_ingest: str, live_query: str) -> None:
    trace = "1bf7651916cd43dd8448eb211c80319c"
    message = json_format.ParseDict(_b64(request(span("3000000000000001", "chat m", 0, 5, trace=trace,
                                                      gen_ai__operation__name="chat"))), ExportTraceServiceRequest())
    body = message.SerializeToString()
    for encoding, data in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)),
                           ("deflate", zlib.compress(body)[2:-4])):
        response = httpx.post(f"{live_ingest}/v1/traces", content=data,
                              headers={"content-type": "application/x-protobuf", "content-encoding": encoding})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-protobuf"
        parsed = ExportTraceServiceResponse.FromString(response.content)
        assert parsed.partial_success.rejected_spans == 0
    # A root that is itself a typed operation is the run's extent and its one step.
    detail = run_detail(live_query, "1bf76519-16cd-43dd-8448-eb211c80319c")
    assert detail["run"]["status"] == "success" and [s["step_type"] for s in detail["steps"]] == ["llm"]


def _b64(doc: dict[str, Any]) -> dict[str, Any]:
    import base64

    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        sp[key] = base64.b64encode(bytes.fromhex(sp[key])).decode()
    return doc


def test_bad_spans_are_refused_alone(live_ingest: str, live_query: str) -> None:
    trace = "2cf7651916cd43dd8448eb211c80319c"
    good = span("4000000000000001", "chat ok", 0, 5, trace=trace, gen_ai__operation__name="chat")
    bad_ids = [
        span("4000000000000002", "x", 0, 5, trace="zz" * 16),
        span("4000000000000003", "x", 0, 5, trace="00" * 16),
        span("nothex", "x", 0, 5, trace=trace),
        span("4000000000000004", "x", 0, 5, trace=trace, parent="0000000000000000"),
        span("4000000000000005", "x", 9, 5, trace=trace),  # ends before it starts
        {**span("4000000000000006", "x", 0, 5, trace=trace), "endTimeUnixNano": str(T0 + 10**18)},
    ]
    response = post_json(live_ingest, request(good, *bad_ids))
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == len(bad_ids)
    assert "spans[1].traceId" in partial["errorMessage"] and "and 3 more" in partial["errorMessage"]
    detail = run_detail(live_query, "2cf76519-16cd-43dd-8448-eb211c80319c")
    assert [s["name"] for s in detail["steps"]] == ["chat ok"]


# One store per case would cost a database each; the cases run in one test per store instead.
BAD_REQUESTS: list[tuple[bytes, dict[str, str], int]] = [
    (b"\xff\xfe garbage \x00\x01", {"content-type": "application/x-protobuf"}, 400),
    (b"\x0a\xff\xff\xff\xff\x0f", {"content-type": "application/x-protobuf"}, 400),
    (b'{"resourceSpans": [', {"content-type": "application/json"}, 400),
    (b'[1, 2]', {"content-type": "application/json"}, 400),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
     {"content-type": "application/json"}, 400),
    (b'{"resourceSpans": "no"}', {"content-type": "application/json"}, 400),
    (b"", {"content-type": "application/json"}, 400),
    (b"{}", {"content-type": "text/plain"}, 415),
    (b"{}", {"content-type": "application/json", "content-encoding": "br"}, 415),
    (b"not gzip", {"content-type": "application/json", "content-encoding": "gzip"}, 400),
    (b"not deflate", {"content-type": "application/json", "content-encoding": "deflate"}, 400),
    (gzip.compress(b"\0" * (MAX_BATCH_BYTES + 10)), {"content-type": "application/x-protobuf",
                                                     "content-encoding": "gzip"}, 413),
    (zlib.compress(b" " * (MAX_BATCH_BYTES + 10)), {"content-type": "application/json",
                                                    "content-encoding": "deflate"}, 413),
    (os.urandom(16) * (MAX_BATCH_BYTES // 16 + 1), {"content-type": "application/x-protobuf"}, 413),
]


def test_bad_requests_get_4xx(live_ingest: str) -> None:
    for case, (content, headers, status) in enumerate(BAD_REQUESTS):
        response = httpx.post(f"{live_ingest}/v1/traces", content=content, headers=headers, timeout=30)
        assert response.status_code == status, (case, headers, response.text[:200])
        if headers["content-type"] == "application/x-protobuf":
            assert status_pb2.Status.FromString(response.content).message, case
        else:
            assert response.json()["field"] and response.json()["rule"], case


def test_empty_request_and_auth(live_settings: Settings, store: Store) -> None:
    _, key = store.create_key("ingest")
    _, read_key = store.create_key("read")
    with serve_app(ingest.create_app(live_settings)) as url:
        assert post_json(url, {}).status_code == 401
        assert post_json(url, {}, authorization=f"Bearer {read_key}").status_code == 403
        ok = post_json(url, {}, authorization=f"Bearer {key}")
        assert ok.status_code == 200 and ok.json() == {}
        assert post_json(url, {"resourceSpans": []}, **{"x-api-key": key}).status_code == 200


def test_the_runs_identity_follows_the_documented_precedence(live_ingest: str, live_query: str) -> None:
    """agenttracer.* resource attributes, else the outermost agent span, else service.name/version."""
    def posted(trace: str, resource: list[dict[str, Any]], *spans: dict[str, Any]) -> dict[str, Any]:
        doc = {"resourceSpans": [{"resource": {"attributes": resource},
                                  "scopeSpans": [{"scope": {"name": "hand"}, "spans": list(spans)}]}]}
        assert post_json(live_ingest, doc).status_code == 200
        return run_detail(live_query, f"{trace[:8]}-{trace[8:12]}-{trace[12:16]}-{trace[16:20]}-{trace[20:]}")["run"]

    service = [attr("service.name", "svc"), attr("service.version", "1.0"), attr("deployment.environment", "old"),
               attr("deployment.environment.name", "prod")]
    explicit = [*service, attr("agenttracer.agent_id", "support-bot"), attr("agenttracer.agent_version", "7"),
                attr("agenttracer.environment", "staging")]

    def agents(trace: str) -> tuple[dict[str, Any], ...]:
        # A workflow root without an agent name; the outer agent under it; an inner agent it calls.
        ids = [f"{trace[-1]}{n:015d}" for n in (1, 2, 3)]
        root = span(ids[0], "workflow", 0, 100, trace=trace, openinference__span__kind="CHAIN")
        outer = span(ids[1], "triage", 1, 90, parent=ids[0], trace=trace,
                     gen_ai__operation__name="invoke_agent", gen_ai__agent__name="triage")
        inner = span(ids[2], "billing", 10, 80, parent=ids[1], trace=trace,
                     gen_ai__operation__name="invoke_agent", gen_ai__agent__name="billing")
        return inner, outer, root  # children first, as a BatchSpanProcessor sends them

    run = posted("1af7651916cd43dd8448eb211c80319a", explicit, *agents("1af7651916cd43dd8448eb211c80319a"))
    assert (run["agent_id"], run["agent_version"], run["environment"]) == ("support-bot", "7", "staging")
    run = posted("1af7651916cd43dd8448eb211c80319b", service, *agents("1af7651916cd43dd8448eb211c80319b"))
    assert (run["agent_id"], run["agent_version"], run["environment"]) == ("triage", "1.0", "prod")
    trace = "1af7651916cd43dd8448eb211c80319c"
    run = posted(trace, service, span("4000000000000001", "job", 0, 10, trace=trace))
    assert (run["agent_id"], run["agent_version"], run["environment"]) == ("svc", "1.0", "prod")


# --- the one verdict rule over real HTTP (docs/failure-handling.md) ---------------------------------


def story(trace: str, *spans: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**s, "traceId": trace} for s in spans]


def verdict_of(live_query: str, trace: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run_id = f"{trace[:8]}-{trace[8:12]}-{trace[12:16]}-{trace[16:20]}-{trace[20:]}"
    detail = run_detail(live_query, run_id)
    return detail, detail["steps"]


def test_verdicts_over_http_cross_turn_retry_partial_and_the_agents_sdk_wrapper(live_ingest: str,
                                                                               live_query: str) -> None:
    # 1. A tool fails under the model's first turn (its "Step 1" span fails with it); the next turn calls
    #    it again under "Step 2" and it works. Sent one span per request, children first, root last.
    retry = story(
        "11111111111111111111111111111111",
        span("1000000000000001", "CodeAgent.run", 0, 100, openinference__span__kind="AGENT"),
        span("1000000000000002", "Step 1", 1, 30, parent="1000000000000001", error=True,
             openinference__span__kind="CHAIN"),
        span("1000000000000003", "lookup", 5, 20, parent="1000000000000002", error=True,
             openinference__span__kind="TOOL", tool__name="lookup"),
        span("1000000000000004", "Step 2", 40, 90, parent="1000000000000001", openinference__span__kind="CHAIN"),
        span("1000000000000005", "lookup", 45, 60, parent="1000000000000004", openinference__span__kind="TOOL",
             tool__name="lookup"),
    )
    for s in sorted(retry, key=lambda s: int(s["endTimeUnixNano"])):
        assert post_json(live_ingest, request(s)).status_code == 200
    detail, steps = verdict_of(live_query, "11111111111111111111111111111111")
    assert detail["run"]["status"] == "success" and detail["failure"] is None
    tools = [s for s in steps if s["step_type"] == "tool"]
    assert [(s["status"], s["attempt"], s["retry_of_seq"]) for s in tools] == [
        ("error", 1, None), ("ok", 2, tools[0]["seq"])]
    assert tools[1]["parent_seq"] != tools[0]["parent_seq"]  # under another turn

    # 2. The tool fails every time; the agent answers anyway: partial, no failure.
    partial = story(
        "22222222222222222222222222222222",
        span("2000000000000001", "agent", 0, 100, openinference__span__kind="AGENT"),
        span("2000000000000002", "lookup", 5, 20, parent="2000000000000001", error=True,
             openinference__span__kind="TOOL", tool__name="lookup"),
        span("2000000000000003", "lookup", 25, 40, parent="2000000000000001", error=True,
             openinference__span__kind="TOOL", tool__name="lookup"),
        span("2000000000000004", "answer", 50, 60, parent="2000000000000001", openinference__span__kind="LLM"),
    )
    assert post_json(live_ingest, request(*partial)).status_code == 200
    detail, _ = verdict_of(live_query, "22222222222222222222222222222222")
    assert (detail["run"]["status"], detail["failure"]) == ("partial", None)

    # 3. The OpenAI Agents SDK: an OK workflow root and chain, the agent span ERROR after a rate-limited
    #    model call under an OK turn. Root first this time.
    wrapper = story(
        "33333333333333333333333333333333",
        span("3000000000000001", "Agent workflow", 0, 100, openinference__span__kind="AGENT"),
        span("3000000000000002", "Agent workflow", 1, 99, parent="3000000000000001",
             openinference__span__kind="CHAIN"),
        span("3000000000000003", "support_bot", 2, 98, parent="3000000000000002", error=True,
             openinference__span__kind="AGENT"),
        span("3000000000000004", "turn", 3, 97, parent="3000000000000003", openinference__span__kind="CHAIN"),
        span("3000000000000005", "generation", 4, 20, parent="3000000000000004", error=True,
             openinference__span__kind="LLM", error__type="rate_limited"),
    )
    for s in wrapper:
        assert post_json(live_ingest, request(s)).status_code == 200
    detail, steps = verdict_of(live_query, "33333333333333333333333333333333")
    llm = next(s for s in steps if s["step_type"] == "llm")
    assert detail["run"]["status"] == "failure"
    assert (detail["failure"]["failure_type"], detail["failure"]["failure_code"], detail["failure"]["step_seq"]) == (
        "model", "rate_limited", llm["seq"])
