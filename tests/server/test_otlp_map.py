"""Mapping one OTLP span (pure): step types, names, failure codes, the metadata cap, what is counted."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agenttracer.privacy.otel import SPAN_ATTRIBUTES, Kind
from agenttracer.server.ingest.otlp_map import map_request
from agenttracer.store.otlp_assemble import SpanRecord

NOW = datetime.now(timezone.utc)
T = time.time_ns() - 10**9


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def one(attrs: dict[str, Any], name: str = "op", parent: bytes = b"\x09" * 8, error: bool = False,
        events: list[tuple[str, dict[str, Any]]] = (), message: str = "secret") -> SpanRecord:  # type: ignore[assignment]
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, parent_span_id=parent, name=name,
                start_time_unix_nano=T, end_time_unix_nano=T + 5_000_000,
                status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK, message=message))
    span.attributes.extend(kv(k, v) for k, v in attrs.items())
    for event_name, event_attrs in events:
        span.events.add(name=event_name).attributes.extend(kv(k, v) for k, v in event_attrs.items())
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(span)
    mapped = map_request(request, NOW)
    assert not mapped.rejected
    (record,) = mapped.spans
    return record


@pytest.mark.parametrize(
    ("attrs", "parent", "step_type"),
    [
        ({"gen_ai.operation.name": "chat"}, b"\x09" * 8, "llm"),
        ({"gen_ai.operation.name": "generate_content"}, b"\x09" * 8, "llm"),
        ({"gen_ai.operation.name": "execute_tool"}, b"\x09" * 8, "tool"),
        ({"gen_ai.operation.name": "embeddings"}, b"\x09" * 8, "retrieval"),
        ({"gen_ai.operation.name": "invoke_agent"}, b"", None),
        ({"gen_ai.operation.name": "invoke_agent"}, b"\x09" * 8, "other"),
        ({"gen_ai.operation.name": "something_new"}, b"\x09" * 8, "other"),
        ({"openinference.span.kind": "RETRIEVER"}, b"\x09" * 8, "retrieval"),
        ({"openinference.span.kind": "reranker"}, b"\x09" * 8, "retrieval"),
        ({"openinference.span.kind": "CHAIN"}, b"", None),
        ({"openinference.span.kind": "LLM"}, b"", "llm"),  # a lone LLM call: the run and its one step
        ({"openinference.span.kind": "GUARDRAIL"}, b"\x09" * 8, "other"),
        ({}, b"", None),
        ({}, b"\x09" * 8, "other"),
        ({"gen_ai.operation.name": "something_new"}, b"", "other"),  # typed, but not a type we know
        # OpenLLMetry (Traceloop) decorators
        ({"traceloop.span.kind": "tool"}, b"\x09" * 8, "tool"),
        ({"traceloop.span.kind": "task"}, b"\x09" * 8, "other"),
        ({"traceloop.span.kind": "agent"}, b"", None),
        ({"traceloop.span.kind": "workflow"}, b"", None),
        ({"traceloop.span.kind": "workflow"}, b"\x09" * 8, "other"),
        ({"gen_ai.operation.name": "chat", "traceloop.span.kind": "task"}, b"\x09" * 8, "llm"),
        # the Vercel AI SDK
        ({"ai.operationId": "ai.generateText"}, b"", None),
        ({"ai.operationId": "ai.generateText.doGenerate"}, b"\x09" * 8, "llm"),
        ({"ai.operationId": "ai.streamText.doStream"}, b"\x09" * 8, "llm"),
        ({"ai.operationId": "ai.toolCall"}, b"\x09" * 8, "tool"),
        ({"ai.operationId": "ai.embedMany.doEmbed"}, b"\x09" * 8, "retrieval"),
    ],
)
def test_step_types(attrs: dict[str, Any], parent: bytes, step_type: str | None) -> None:
    assert one(attrs, parent=parent).step_type == step_type


def test_names_come_from_the_tool_or_the_span_through_the_name_check() -> None:
    assert one({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}, name="x").name == "search"
    assert one({"gen_ai.operation.name": "chat"}, name="chat gpt-4o").name == "chat gpt-4o"
    prose = "Please tell me where my order went, I have been waiting for two weeks now"
    assert one({"gen_ai.operation.name": "chat"}, name=prose).name == "[redacted]"
    assert one({}, name="mail jane.doe@example.com").name == "[redacted]"


@pytest.mark.parametrize(
    ("attrs", "events", "code"),
    [
        ({"error.type": "rate_limited"}, [], "rate_limited"),
        ({"error.type": "503"}, [], "server_error"),
        ({"error.type": "429"}, [], "rate_limited"),
        ({"error.type": "openai.APITimeoutError"}, [], "timeout"),
        # how opentelemetry-instrumentation-openai-v2 writes error.type
        ({"error.type": "<class 'openai.RateLimitError'>"}, [], "rate_limited"),
        ({"error.type": "<class 'openai.BadRequestError'>"}, [], "bad_request"),
        ({"error.type": "httpx.ConnectTimeout"}, [], "timeout"),
        ({"error.type": "_OTHER", "http.response.status_code": 401}, [], "auth_error"),
        ({"error.type": "httpx.HTTPStatusError", "http.response.status_code": 502}, [], "server_error"),
        ({"error.type": "httpx.HTTPStatusError"}, [], "http_error"),
        ({"error.type": "ValueError"}, [("exception", {"exception.type": "openai.NotFoundError"})], "not_found"),
        ({}, [("exception", {"exception.type": "agents.exceptions.MaxTurnsExceeded"})], "max_iterations"),
        ({}, [("exception", {"exception.type": "TimeoutError", "exception.message": "x"})], "timeout"),
        ({"pydantic_ai.tool.retry.cause": "validation_error"}, [], "schema_invalid"),
        ({}, [], "unhandled_exception"),
    ],
)
def test_failure_codes(attrs: dict[str, Any], events: list[tuple[str, dict[str, Any]]], code: str) -> None:
    record = one(attrs, error=True, events=events)
    assert record.error and record.failure_code == code


@pytest.mark.parametrize(
    ("attrs", "events", "message", "code"),
    [
        # the Agents SDK via OpenInference: the 429 is only in the status message
        ({"openinference.span.kind": "LLM"}, [], "Error getting response: {'error': 'Error code: 429 - x'}",
         "rate_limited"),
        # the Vercel AI SDK: a generic class, the provider's wording only in the exception message
        ({}, [("exception", {"exception.type": "AI_APICallError", "exception.message": "Rate limit reached"})], "",
         "rate_limited"),
        ({"error.type": "httpx.HTTPStatusError"}, [], "Server error '503 Service Unavailable' status code 503",
         "server_error"),
        # a specific class or a status attribute wins over the message
        ({}, [("exception", {"exception.type": "TimeoutError"})], "Error code: 429", "timeout"),
        ({"http.response.status_code": 401}, [], "Error code: 429", "auth_error"),
        # a number in the message is data unless a provider's wording states it
        ({}, [("exception", {"exception.type": "ValueError", "exception.message": "order 429 is missing"})],
         "order 429 is missing", "unhandled_exception"),
    ],
)
def test_an_error_spans_message_is_read_only_for_a_providers_status(
        attrs: dict[str, Any], events: list[tuple[str, dict[str, Any]]], message: str, code: str) -> None:
    record = one(attrs, error=True, events=events, message=message)
    assert record.failure_code == code
    assert "429" not in repr(record.meta) and "Rate limit" not in repr(record.meta)  # matched, never kept


def test_a_message_on_a_span_that_did_not_fail_is_not_read() -> None:
    record = one({"pydantic_ai.tool.retry.cause": "unknown_cause"}, message="Error code: 429")
    assert (record.error, record.failure_code) == (True, "unhandled_exception")


@pytest.mark.parametrize(
    ("name", "attrs", "step_type"),
    [
        # OpenInference's LlamaIndex instrumentation types this helper LLM: it calls no model, reports no tokens
        ("OpenAI._prepare_chat_with_tools", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini"},
         "other"),
        ("OpenAI.achat", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini"}, "llm"),
        ("OpenAI._achat", {"openinference.span.kind": "LLM", "llm.token_count.prompt": 31}, "llm"),  # it has tokens
        ("OpenAI.__call__", {"openinference.span.kind": "LLM"}, "llm"),  # a dunder is not a private helper
        ("chat gpt-4o", {"gen_ai.operation.name": "chat"}, "llm"),
        ("Tools._prepare", {"openinference.span.kind": "TOOL", "tool.name": "lookup"}, "tool"),  # only llm spans
    ],
)
def test_a_private_helper_typed_llm_without_tokens_is_not_a_model_call(name: str, attrs: dict[str, Any],
                                                                       step_type: str) -> None:
    assert one(attrs, name=name).step_type == step_type


def test_a_retry_marker_makes_an_error_step_and_an_explicit_attempt() -> None:
    record = one({"pydantic_ai.tool.retry.cause": "model_retry", "pydantic_ai.tool.retry.attempt": 2})
    assert (record.error, record.failure_code, record.explicit_attempt) == (True, "invalid_output", 2)
    tags = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=T, end_time_unix_nano=T + 1)
    tags.attributes.append(KeyValue(key="tag.tags", value=AnyValue(array_value={"values": [
        AnyValue(string_value="seq:step:1"), AnyValue(string_value="retry:attempt:3")]})))
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(tags)
    (record,) = map_request(request, NOW).spans
    # Only the number is kept, where a stated attempt is stored, so a later relink still finds it.
    assert record.explicit_attempt == 3 and record.dropped == 1 and record.meta == {"retry_attempt": 3}


def test_metadata_is_capped_and_everything_dropped_is_counted() -> None:
    attrs: dict[str, Any] = {}
    for key, entry in SPAN_ATTRIBUTES.items():
        attrs[key] = {Kind.LABEL: "v", Kind.LABELS: "v", Kind.BOOL: True}.get(entry.kind, 1)
    record = one({**attrs, "gen_ai.input.messages": "hello", "input.value": "x"},
                 events=[("gen_ai.choice", {"x": 1}), ("exception", {"exception.type": "E", "exception.message": "m"})])
    assert len(record.meta) == 32
    # Every attribute not stored (second spellings, past the cap, content), the choice event, the
    # exception message; never the exception type, which is kept.
    assert record.dropped == (len(attrs) + 2 - 32) + 1 + 1
    assert record.error_class == "E"


def test_traceloop_and_vercel_tool_steps_are_named_by_their_tool() -> None:
    traceloop_tool = {"traceloop.span.kind": "tool", "traceloop.entity.name": "lookup_order"}
    assert one(traceloop_tool, name="lookup_order.tool").name == "lookup_order"
    assert one({"traceloop.span.kind": "tool", "gen_ai.tool.name": "lookup", "traceloop.entity.name": "x"}).name \
        == "lookup"
    assert one({"ai.operationId": "ai.toolCall", "ai.toolCall.name": "lookup_order"}, name="ai.toolCall").name \
        == "lookup_order"
    agent = one({"traceloop.span.kind": "agent", "traceloop.entity.name": "support_bot"}, parent=b"")
    assert agent.agent_name == "support_bot"
    assert one({"ai.operationId": "ai.generateText", "ai.telemetry.functionId": "support_bot"}, parent=b"") \
        .agent_name == "support_bot"


def test_finish_reasons_are_stored_as_a_list_whatever_their_encoding() -> None:
    assert one({"gen_ai.response.finish_reasons": '["stop"]'}).meta["finish_reasons"] == ["stop"]  # Logfire
    assert one({"ai.response.finishReason": "tool-calls"}).meta["finish_reasons"] == ["tool-calls"]
    array = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=T, end_time_unix_nano=T + 1)
    array.attributes.append(KeyValue(key="gen_ai.response.finish_reasons", value=AnyValue(array_value={"values": [
        AnyValue(string_value="tool_calls"), AnyValue(string_value="stop")]})))
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(array)
    (record,) = map_request(request, NOW).spans
    assert record.meta["finish_reasons"] == ["tool_calls", "stop"]
    # A control character in any label drops the value, as for a single label.
    assert "finish_reasons" not in one({"gen_ai.response.finish_reasons": '["stop", "a\\u0000b"]'}).meta


def _resource_meta(attrs: dict[str, Any]) -> dict[str, Any]:
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=T, end_time_unix_nano=T + 1)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(kv(k, v) for k, v in attrs.items())
    resource_spans.scope_spans.add().spans.append(span)
    (record,) = map_request(request, NOW).spans
    assert record.resource is not None
    return record.resource.meta


def test_resource_keys_that_store_under_one_name_follow_the_allow_lists_order() -> None:
    assert _resource_meta({"deployment.environment": "old", "deployment.environment.name": "prod"}) == {
        "environment": "prod"}
    assert _resource_meta({"deployment.environment.name": "prod", "agenttracer.environment": "staging",
                           "service.name": "svc", "agenttracer.agent_id": "support-bot",
                           "agenttracer.agent_version": "1.4.2"}) == {
        "environment": "staging", "service": "svc", "agent_id": "support-bot", "agent_version": "1.4.2"}
