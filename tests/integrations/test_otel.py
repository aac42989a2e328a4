"""MetadataOnlySpanExporter with the real OpenTelemetry SDK: in memory, and through a real OTLP/HTTP exporter.

Spans carry canaries where instrumentations put content (GenAI and OpenInference attributes, exception
messages and stack traces, status descriptions, event and link attributes, resource attributes); what
reaches the wrapped exporter — and the bytes that cross the socket to the Ingest API — hold none of
them, while the allow-listed metadata survives.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

from agenttracer.integrations.otel import MetadataOnlySpanExporter
from tests.integrations.conftest import CANARIES, LogCapture, assert_no_canaries
from tests.support.capture import Captured


def emit(exporter: SpanExporter) -> None:
    """An agent's spans as instrumentations emit them: one agent span, an LLM call, a failing tool."""
    provider = TracerProvider(resource=Resource.create({
        "service.name": "otel-agent", "service.version": "v3", "deployment.environment.name": "test",
        "host.name": CANARIES["system"], "process.command_args": [CANARIES["input"]]}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("demo.instrumentation", "1.0", attributes={"scope.note": CANARIES["system"]})
    with tracer.start_as_current_span("invoke_agent support", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
            "input.value": CANARIES["input"], "output.value": CANARIES["output"]}) as agent:
        with tracer.start_as_current_span("chat demo-model", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "demo-model",
                "gen_ai.usage.input_tokens": 42, "gen_ai.usage.output_tokens": 9,
                "gen_ai.response.finish_reasons": ["tool_calls"],
                "gen_ai.prompt": CANARIES["prompt"], "gen_ai.completion": CANARIES["output"],
                "llm.input_messages.0.message.content": CANARIES["prompt"],
                "gen_ai.request.model_note": CANARIES["prompt"]}) as chat:
            chat.add_event("gen_ai.content.prompt", {"gen_ai.prompt": CANARIES["prompt"]})
        with tracer.start_as_current_span("execute_tool lookup_order", links=[
                Link(agent.get_span_context(), {"note": CANARIES["tool_args"]})], attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
                "gen_ai.tool.call.arguments": CANARIES["tool_args"],
                "gen_ai.tool.call.result": CANARIES["tool_output"],
                "gen_ai.tool.name.alias": CANARIES["document"]}, record_exception=False) as tool:
            tool.record_exception(TimeoutError(CANARIES["exception"]))
            tool.set_status(Status(StatusCode.ERROR, CANARIES["exception"]))
            tool.set_attribute("error.type", "TimeoutError")
    provider.shutdown()


def as_text(spans: Any) -> str:
    return "\n".join(span.to_json() for span in spans)


def test_only_allow_listed_metadata_reaches_the_wrapped_exporter() -> None:
    raw, inner = InMemorySpanExporter(), InMemorySpanExporter()
    emit(raw)
    assert all(c in as_text(raw.get_finished_spans()) for c in
               (CANARIES["prompt"], CANARIES["exception"], CANARIES["tool_args"]))  # the search can find them

    exporter = MetadataOnlySpanExporter(inner)
    emit(exporter)
    spans = {s.name: s for s in inner.get_finished_spans()}
    text = as_text(spans.values())
    assert [c for c in CANARIES.values() if c in text] == []

    chat, tool, agent = spans["chat demo-model"], spans["execute_tool lookup_order"], spans["invoke_agent support"]
    assert dict(chat.attributes or {}) == {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "demo-model", "gen_ai.usage.input_tokens": 42,
        "gen_ai.usage.output_tokens": 9, "gen_ai.response.finish_reasons": ("tool_calls",)}
    assert [(e.name, dict(e.attributes or {})) for e in chat.events] == [("gen_ai.content.prompt", {})]
    assert dict(tool.attributes or {}) == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
                                           "error.type": "TimeoutError"}
    assert [(e.name, dict(e.attributes or {})) for e in tool.events] == [
        ("exception", {"exception.type": "TimeoutError"})]
    assert (tool.status.status_code, tool.status.description) == (StatusCode.ERROR, None)
    assert [(dict(link.attributes or {}), link.context.span_id) for link in tool.links] == [
        ({}, agent.context.span_id)]
    # Ids, parents and times are untouched: the trace stays whole.
    assert tool.parent is not None and tool.parent.span_id == agent.context.span_id
    assert chat.context.trace_id == agent.context.trace_id and chat.start_time <= chat.end_time
    assert dict(agent.resource.attributes) == {"service.name": "otel-agent", "service.version": "v3",
                                               "deployment.environment.name": "test",
                                               "telemetry.sdk.name": "opentelemetry",
                                               "telemetry.sdk.language": "python",
                                               "telemetry.sdk.version": agent.resource.attributes[
                                                   "telemetry.sdk.version"]}
    assert agent.instrumentation_scope is not None and agent.instrumentation_scope.attributes in (None, {})
    stats = exporter.stats()
    assert stats["spans_exported"] == 3 and stats.get("spans_dropped", 0) == 0
    assert stats["attributes_dropped"] >= 9


def _failed_span(status: str, exc: Exception, attributes: dict[str, Any]) -> ReadableSpan:
    inner = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(MetadataOnlySpanExporter(inner)))
    with provider.get_tracer("t").start_as_current_span("call", attributes=attributes,
                                                        record_exception=False, set_status_on_exception=False) as span:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, status))
    provider.shutdown()
    (exported,) = inner.get_finished_spans()
    assert CANARIES["exception"] not in exported.to_json()
    return exported


def test_a_providers_status_wording_in_a_message_leaves_as_its_code_without_the_message() -> None:
    class APICallError(Exception):  # a generic client error: its message is all that says 429
        pass

    said = f"Error code: 429 - {CANARIES['exception']}"
    span = _failed_span(said, APICallError(said), {"gen_ai.operation.name": "chat"})
    assert dict(span.attributes or {}) == {"gen_ai.operation.name": "chat", "error.type": "rate_limited"}
    rate = _failed_span(CANARIES["exception"], APICallError(f"Rate limit reached {CANARIES['exception']}"), {})
    assert dict(rate.attributes or {}) == {"error.type": "rate_limited"}
    # A specific class, an HTTP status attribute or a number that is only data: nothing is added.
    assert dict(_failed_span(said, TimeoutError(said), {}).attributes or {}) == {}
    assert dict(_failed_span(said, APICallError(), {"http.response.status_code": 503}).attributes or {}) == {
        "http.response.status_code": 503}
    plain = f"order 429 not found {CANARIES['exception']}"
    assert dict(_failed_span(plain, ValueError(plain), {}).attributes or {}) == {}


def test_a_span_that_cannot_be_rebuilt_is_dropped_not_exported_as_it_was() -> None:
    inner = InMemorySpanExporter()
    exporter = MetadataOnlySpanExporter(inner)

    class Broken(ReadableSpan):
        @property
        def events(self) -> Any:
            raise RuntimeError(CANARIES["exception"])

    assert exporter.export([Broken(name=CANARIES["prompt"])]) == SpanExportResult.SUCCESS
    assert inner.get_finished_spans() == () or list(inner.get_finished_spans()) == []
    assert exporter.stats() == {"spans_dropped": 1, "spans_exported": 0}
    # A name that holds personal data is redacted by the same policy as step names.
    exporter.export([ReadableSpan(name="lookup for jane.doe@example.com")])
    assert [s.name for s in inner.get_finished_spans()] == ["[redacted]"]


def test_what_crosses_the_socket_to_v1_traces_holds_no_content(captured_ingest: Captured, db_url: str,
                                                               logs: LogCapture, live_query: str) -> None:
    otlp = OTLPSpanExporter(endpoint=f"{captured_ingest.url}/v1/traces", timeout=10)
    emit(MetadataOnlySpanExporter(otlp))
    traces = [body for path, body in captured_ingest.requests if path == "/v1/traces"]
    assert len(traces) == 3
    sent = b"".join(traces)
    # Protobuf carries strings as raw bytes: the allow-listed values are there, the canaries are not.
    assert b"demo-model" in sent and b"lookup_order" in sent and b"TimeoutError" in sent
    assert_no_canaries(captured_ingest, db_url, logs)
    runs = httpx.get(f"{live_query}/v1/runs", timeout=10).json()["items"]
    assert [r["agent_id"] for r in runs] == ["support"]  # stored, named by the root span's gen_ai.agent.name
    detail = httpx.get(f"{live_query}/v1/runs/{runs[0]['run_id']}", timeout=10).json()
    assert [(s["name"], s["step_type"], s["status"], s.get("error_class")) for s in detail["steps"]] == [
        ("chat demo-model", "llm", "ok", None), ("lookup_order", "tool", "error", "TimeoutError")]
    assert CANARIES["prompt"] not in json.dumps(detail)
