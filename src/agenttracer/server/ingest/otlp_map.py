"""From OTLP spans to AgentTracer's execution model: one ``SpanRecord`` per accepted span.

A trace is a run (``run_id`` is the trace id written as a UUID); a span is a step, except the root
span of an agent, workflow or chain, which is the run itself. Only allow-listed attributes are read
(``agenttracer.privacy.otel``): every other key is counted and its value never converted; of span
events only the ``exception`` event's ``exception.type`` is kept; links are counted. One exception,
never stored: when an error span's class names say nothing specific, its status message and
``exception.message`` are matched against the classifier's provider-status and rate-limit patterns
(``failure_codes.failure_code_for_message``) and only the resulting code is kept. ``docs/otlp.md``
has the tables below in prose.

Per-span refusals (the span is left out, the rest of the request is stored) name the field and the
rule; they never quote a value. The SDK path's text rule holds here too (``model.text_rule_broken``): a
span whose name, agent name or version — or whose resource's service name, version or environment —
is longer than its column or holds a control character is refused, never stored cut or left for the
database to refuse; an allow-listed label holding a control character is dropped like any refused
value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agenttracer import privacy
from agenttracer.failure_codes import (
    DEFAULT_EXCEPTION_CODE,
    FALLBACK_CODES,
    GENERIC_HTTP_CODE,
    failure_code_for_class_name,
    failure_code_for_message,
    failure_code_for_status,
)
from agenttracer.model import (
    EARLIEST_TIME,
    FAILURE_CODES,
    MAX_ATTEMPT,
    MAX_LATENCY_MS,
    MAX_META_KEYS,
    MAX_NAME_LEN,
    PROJECT_RESOURCE_ATTRIBUTE,
    UNIX_EPOCH,
    StepType,
    has_bad_chars,
    latest_time,
    text_rule_broken,
    text_rule_text,
)
from agenttracer.privacy.otel import (
    EXCEPTION_EVENT_ATTRIBUTES,
    RESOURCE_ATTRIBUTES,
    SPAN_ATTRIBUTES,
    Allowed,
    filter_attributes,
    judge,
    retry_attempt_from_tags,
)
from agenttracer.store.otlp_assemble import Resource, SpanRecord

# gen_ai.operation.name -> step type; None: an agent or workflow (the run itself when it is the root).
OPERATION_STEP_TYPES: dict[str, StepType | None] = {
    "chat": StepType.LLM,
    "text_completion": StepType.LLM,
    "generate_content": StepType.LLM,
    "execute_tool": StepType.TOOL,
    "embeddings": StepType.RETRIEVAL,
    "retrieval": StepType.RETRIEVAL,
    "invoke_agent": None,
    "create_agent": None,
    "invoke_workflow": None,
}
# openinference.span.kind -> step type (upper case, as OpenInference writes it).
SPAN_KIND_STEP_TYPES: dict[str, StepType | None] = {
    "LLM": StepType.LLM,
    "TOOL": StepType.TOOL,
    "RETRIEVER": StepType.RETRIEVAL,
    "EMBEDDING": StepType.RETRIEVAL,
    "RERANKER": StepType.RETRIEVAL,
    "AGENT": None,
    "CHAIN": None,
    "GUARDRAIL": StepType.OTHER,
    "EVALUATOR": StepType.OTHER,
    "PROMPT": StepType.OTHER,
}
# traceloop.span.kind (OpenLLMetry's @workflow, @agent, @task and @tool decorators) -> step type. Its
# LLM spans carry gen_ai.operation.name, which is read first.
TRACELOOP_KIND_STEP_TYPES: dict[str, StepType | None] = {
    "workflow": None,
    "agent": None,
    "task": StepType.OTHER,
    "tool": StepType.TOOL,
}
# ai.operationId (the Vercel AI SDK's spans) -> step type: the call wrapper is the agent (the run when it
# is the root), its doGenerate/doStream spans are the model calls.
VERCEL_OPERATION_STEP_TYPES: dict[str, StepType | None] = {
    "ai.generateText": None,
    "ai.streamText": None,
    "ai.generateObject": None,
    "ai.streamObject": None,
    "ai.generateText.doGenerate": StepType.LLM,
    "ai.streamText.doStream": StepType.LLM,
    "ai.generateObject.doGenerate": StepType.LLM,
    "ai.streamObject.doStream": StepType.LLM,
    "ai.toolCall": StepType.TOOL,
    "ai.embed": None,
    "ai.embedMany": None,
    "ai.embed.doEmbed": StepType.RETRIEVAL,
    "ai.embedMany.doEmbed": StepType.RETRIEVAL,
}
# Where a span's type is read, first match wins: stored metadata key, its vocabulary, whether the
# value is compared in upper case.
_TYPE_SOURCES: tuple[tuple[str, dict[str, StepType | None], bool], ...] = (
    ("operation", OPERATION_STEP_TYPES, False),
    ("span_kind", SPAN_KIND_STEP_TYPES, True),
    ("traceloop_kind", TRACELOOP_KIND_STEP_TYPES, False),
    ("ai_operation", VERCEL_OPERATION_STEP_TYPES, False),
)
# Pydantic AI's retry causes -> failure codes of the failed attempt.
RETRY_CAUSE_CODES = {"model_retry": "invalid_output", "validation_error": "schema_invalid"}

# A span named as a private method of a class (not a dunder): ``OpenAI._prepare_chat_with_tools``.
_PRIVATE_METHOD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\._(?!_)[A-Za-z0-9_]{1,128}")
_TOKEN_KEY_PREFIX = "tokens_"  # stored names of the token counts (tokens_in, tokens_out, …)
EXCEPTION_MESSAGE_KEY = "exception.message"  # matched for a status code on error spans, never kept
LANGCHAIN_TAGS_KEY = "tag.tags"  # read only for retry:attempt:N, nothing of it is kept

_SPAN = SPAN_ATTRIBUTES
_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})
_ERROR = Status.STATUS_CODE_ERROR
_UNSUPPORTED = object()  # a value of a shape the allow-list never accepts (bytes, maps)
# Stored metadata keys whose value becomes a run's identity column (model.TEXT_FIELD_LIMITS), on spans and
# on resources.
SPAN_IDENTITY_FIELDS = {"agent_name": "agent_id", "agent_ref": "agent_id", "agent_version": "agent_version"}
RESOURCE_IDENTITY_FIELDS = {"agent_id": "agent_id", "agent_version": "agent_version", "service": "agent_id",
                            "service_version": "agent_version", "environment": "environment"}
# Resource keys in the allow-list's order, which is their precedence where several store under one name
# (agenttracer.environment before deployment.environment.name before deployment.environment).
_RESOURCE_ORDER = {key: index for index, key in enumerate(RESOURCE_ATTRIBUTES)}


@dataclass(slots=True)
class Rejection:
    """A refused span: where it was in the request and which rule it broke."""

    where: str
    field: str
    rule: str


@dataclass(slots=True)
class Mapped:
    spans: list[SpanRecord]
    rejected: list[Rejection]
    dropped: int  # attribute keys, events and links dropped across the request (never their values)


def map_request(request: ExportTraceServiceRequest, now: datetime) -> Mapped:
    """Every span of the request, mapped or refused."""
    spans: list[SpanRecord] = []
    rejected: list[Rejection] = []
    dropped = 0
    # model.py's input rules: times from the epoch to MAX_FUTURE past the server's clock, latency at
    # most MAX_LATENCY_MS.
    latest_ns = int((latest_time(now) - EARLIEST_TIME).total_seconds() * 1e9)
    for r_index, resource_spans in enumerate(request.resource_spans):
        resource, refused = _resource(resource_spans.resource.attributes)
        dropped += resource.dropped
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            for index, span in enumerate(scope_spans.spans):
                record = _span(span, resource, latest_ns) if refused is None else Rejection("", *refused)
                if isinstance(record, Rejection):
                    record.where = f"resourceSpans[{r_index}].scopeSpans[{s_index}].spans[{index}]"
                    rejected.append(record)
                else:
                    spans.append(record)
                    dropped += record.dropped
    return Mapped(spans, rejected, dropped)


def _resource(attributes: Iterable[KeyValue]) -> tuple[Resource, tuple[str, str] | None]:
    """The resource's kept attributes, and (field, rule) when one that names the run breaks the text
    rule: every span of the resource is then refused."""
    known, dropped = _allowed_values(attributes, RESOURCE_ATTRIBUTES)
    # The project is an identifier the Ingest API checks against the slug rule and the key, not metadata.
    project = known.pop(PROJECT_RESOURCE_ATTRIBUTE, None)
    known = dict(sorted(known.items(), key=lambda item: _RESOURCE_ORDER[item[0]]))
    out = filter_attributes(known, RESOURCE_ATTRIBUTES)
    for key, value in known.items():
        column = RESOURCE_IDENTITY_FIELDS.get(RESOURCE_ATTRIBUTES[key].store_as)
        if column is not None and isinstance(value, str) and text_rule_broken(value, column):
            return Resource({}, 0, project), (f"resource.attributes[{key}]", text_rule_text(column))
    stored = {k: v for k, v in out.stored.items() if not (isinstance(v, str) and has_bad_chars(v))}
    return Resource(stored, dropped + out.dropped_total + len(out.stored) - len(stored), project), None


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        items = [_value(v) for v in value.array_value.values[:64]]
        return items if len(value.array_value.values) <= 64 else _UNSUPPORTED
    return _UNSUPPORTED


def _allowed_values(attributes: Iterable[KeyValue], allowed: dict[str, Allowed] | Any) -> tuple[dict[str, Any], int]:
    """The allow-listed keys with their values; the rest only counted (their values stay unconverted)."""
    known: dict[str, Any] = {}
    dropped = 0
    for kv in attributes:
        key = kv.key
        if key in allowed:
            known[key] = _value(kv.value)
        else:
            dropped += 1
    return known, dropped


def _run_id(trace_id: bytes) -> str | None:
    if len(trace_id) != 16 or not any(trace_id):
        return None
    h = trace_id.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _span_id(span_id: bytes) -> str | None:
    if len(span_id) != 8 or not any(span_id):
        return None
    return span_id.hex()


def _time(ns: int) -> datetime:
    return UNIX_EPOCH + timedelta(microseconds=ns // 1000)


def _span(span: Span, resource: Resource, latest_ns: int) -> SpanRecord | Rejection:
    run_id = _run_id(span.trace_id)
    if run_id is None:
        return Rejection("", "traceId", "must be 16 bytes (32 hex digits), not all zero")
    span_id = _span_id(span.span_id)
    if span_id is None:
        return Rejection("", "spanId", "must be 8 bytes (16 hex digits), not all zero")
    parent: str | None = None
    if span.parent_span_id:
        parent = _span_id(span.parent_span_id)
        if parent is None:
            return Rejection("", "parentSpanId", "must be empty or 8 bytes (16 hex digits), not all zero")
    start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
    if not 0 < start_ns <= end_ns <= latest_ns:
        return Rejection(
            "", "startTimeUnixNano", "start and end must be after 1970, end not before start, at most 24 h ahead"
        )
    latency_ms = (end_ns - start_ns) / 1e6
    if latency_ms > MAX_LATENCY_MS:
        return Rejection("", "endTimeUnixNano", "a span may last at most 30 days")

    meta: dict[str, Any] = {}
    dropped = 0
    explicit_attempt: int | None = None
    for kv in span.attributes:
        key = kv.key
        entry = _SPAN.get(key)
        if entry is None:
            if key == LANGCHAIN_TAGS_KEY:  # the one unlisted key looked at: LangChain's retry:attempt:N tag
                explicit_attempt = retry_attempt_from_tags(_value(kv.value))
            dropped += 1
            continue
        any_value = kv.value
        which = any_value.WhichOneof("value")
        raw = getattr(any_value, which) if which in _SCALARS else _value(any_value)
        value, _reason = judge(entry, raw)
        if isinstance(value, str):
            column = SPAN_IDENTITY_FIELDS.get(entry.store_as)
            if column is not None and text_rule_broken(value, column):
                return Rejection("", f"attributes[{key}]", text_rule_text(column))
            if has_bad_chars(value):
                value = None  # the SDK path's metadata rule: a label with control characters is removed
        elif isinstance(value, list) and any(has_bad_chars(label) for label in value):
            value = None
        if value is None or entry.store_as in meta or len(meta) >= MAX_META_KEYS:
            # Refused by the policy, a second spelling of a stored key, or past the metadata key limit.
            dropped += 1
        else:
            meta[entry.store_as] = value

    error_class: str | None = None
    for event in span.events:
        if event.name == "exception" and error_class is None:
            exc_known, exc_dropped = _allowed_values(event.attributes, EXCEPTION_EVENT_ATTRIBUTES)
            exc = filter_attributes(exc_known, EXCEPTION_EVENT_ATTRIBUTES)
            dropped += exc_dropped + exc.dropped_total
            name = exc.stored.get("error_class")
            if isinstance(name, str) and text_rule_broken(name, "error_class") is None:
                error_class = name
        else:
            dropped += 1  # the event, unread
    dropped += len(span.links)

    step_type = _step_type(meta, parent is None)
    if step_type is StepType.LLM and _is_model_helper(span.name, meta):
        step_type = StepType.OTHER
    raw_name = meta.get("tool_name") if step_type is StepType.TOOL else None
    if raw_name is None and step_type is StepType.TOOL:
        raw_name = meta.get("entity_name")  # Traceloop's @tool: the decorated function's name
    name = raw_name if isinstance(raw_name, str) else privacy.scrub_name(span.name[: 4 * MAX_NAME_LEN] or "span")[0]
    if text_rule_broken(name, "name"):
        return Rejection("", "name", text_rule_text("name"))

    if explicit_attempt is None:
        attempt = meta.get("retry_attempt")
        if isinstance(attempt, int) and 1 <= attempt <= MAX_ATTEMPT:
            explicit_attempt = attempt
    elif "retry_attempt" not in meta and len(meta) < MAX_META_KEYS:
        # LangChain's tag number is kept where a framework's stated attempt is stored, so a late span
        # that relinks this step later still finds it (otlp_assemble._stated).
        meta["retry_attempt"] = explicit_attempt
    error = span.status.code == _ERROR or isinstance(meta.get("retry_cause"), str)
    failure_code = _failure_code(meta, error_class) if error else None
    if failure_code in FALLBACK_CODES and span.status.code == _ERROR:
        failure_code = _code_from_messages(span) or failure_code
    agent_name = meta.get("agent_name")
    if agent_name is None and meta.get("traceloop_kind") == "agent":
        agent_name = meta.get("entity_name")
    agent_version = meta.get("agent_version")
    return SpanRecord(
        run_id=run_id,
        span_id=span_id,
        parent_span_id=parent,
        step_type=step_type.value if step_type is not None else None,
        name=name,
        started_at=_time(start_ns),
        ended_at=_time(end_ns),
        latency_ms=latency_ms,
        error=error,
        error_class=error_class,
        failure_code=failure_code,
        explicit_attempt=explicit_attempt,
        agent_name=agent_name if isinstance(agent_name, str) else None,
        agent_version=agent_version if isinstance(agent_version, str) else None,
        meta=meta,
        dropped=dropped,
        resource=resource,
    )


def _is_model_helper(span_name: str, meta: dict[str, Any]) -> bool:
    """Whether an ``llm`` span is a framework's helper around a model call rather than the call: it
    is named as a private method (``Owner._name``: OpenInference's LlamaIndex instrumentation types
    every traced method of an LLM object as LLM, ``OpenAI._prepare_chat_with_tools`` among them) and
    reports no token counts."""
    return _PRIVATE_METHOD.fullmatch(span_name) is not None and not any(
        key.startswith(_TOKEN_KEY_PREFIX) for key in meta)


def _code_from_messages(span: Span) -> str | None:
    """The code a provider's status or rate-limit wording in the error span's status message or
    exception message stands for; the text is matched in place and goes nowhere else."""
    code = failure_code_for_message(span.status.message)
    for event in span.events:
        if code is not None:
            break
        if event.name == "exception":
            for kv in event.attributes:
                if kv.key == EXCEPTION_MESSAGE_KEY and kv.value.WhichOneof("value") == "string_value":
                    code = failure_code_for_message(kv.value.string_value)
    return code


def _step_type(meta: dict[str, Any], is_root: bool) -> StepType | None:
    """The span's step type by the first vocabulary that knows its value; None for an agent, workflow
    or chain at the root (the run's own span). A span typed by none of them is a step of type ``other``,
    unless it is a root without any type attribute."""
    typed = False
    for key, vocabulary, upper in _TYPE_SOURCES:
        value = meta.get(key)
        if not isinstance(value, str):
            continue
        typed = True
        value = value.upper() if upper else value
        if value in vocabulary:
            found = vocabulary[value]
            if found is None:
                return None if is_root else StepType.OTHER  # a nested agent or chain is a step of the run
            return found
    return None if is_root and not typed else StepType.OTHER


def _failure_code(meta: dict[str, Any], error_class: str | None) -> str:
    """error.type when it is a documented code; else the retry cause; else the classifier on
    error.type (a class name, its repr, or an HTTP status), then on the exception event's class,
    with the span's HTTP status as the fallback for generic or unknown names."""
    error_type = meta.get("error_type")
    if isinstance(error_type, str) and error_type in FAILURE_CODES:
        return error_type
    cause = meta.get("retry_cause")
    if isinstance(cause, str) and cause in RETRY_CAUSE_CODES:
        return RETRY_CAUSE_CODES[cause]
    codes = [failure_code_for_class_name(name) for name in (error_type, error_class) if isinstance(name, str)]
    for code in codes:
        if code not in FALLBACK_CODES:
            return code
    status = meta.get("http_status")
    if isinstance(status, int) and 100 <= status <= 599:
        return failure_code_for_status(status)
    return GENERIC_HTTP_CODE if GENERIC_HTTP_CODE in codes else DEFAULT_EXCEPTION_CODE
