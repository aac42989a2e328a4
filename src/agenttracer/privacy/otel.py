"""The OpenTelemetry allow-list: which span, resource and exception-event attributes are metadata.

Spans from instrumented frameworks carry both metadata (model names, token counts, tool names) and
content (prompts, messages, tool arguments, documents) as attributes. AgentTracer keeps only keys it
knows to be metadata and never reads the value of any other key: a key not on the list is counted,
its value untouched. The kept values then pass the one privacy policy (``check_value``), so a
label that holds an e-mail address or a sentence is still refused.

Names come from the GenAI semantic conventions (``gen_ai.*``, also emitted by Pydantic AI and
Logfire), OpenInference (``openinference.span.kind``, ``llm.*``, ``tool.*``; Arize's instrumentors
for LangChain, LlamaIndex, CrewAI, …) and the retry attributes of Pydantic AI. ``docs/otlp.md``
lists them with the reasons.

Two users, one list: the Ingest API's ``/v1/traces`` mapping (server side) and the exporter that
strips content inside the agent process (``agenttracer.integrations``), so that the same keys leave
the process as the server would keep. Standard library only.

Public interface:

* ``SPAN_ATTRIBUTES``, ``RESOURCE_ATTRIBUTES``, ``EXCEPTION_EVENT_ATTRIBUTES``: OTel key -> ``Allowed``
  (the metadata key AgentTracer stores it under, and the kind of value accepted).
* ``filter_attributes(attributes, allowed) -> Filtered``: what is kept (by OTel key and by stored
  key), how many keys were dropped unread, and which allow-listed keys the policy refused (by key
  and reason code, never the value).
* ``retry_attempt_from_tags(tags)``: the N of a LangChain ``retry:attempt:N`` tag, nothing else.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from agenttracer.privacy import reasons as R
from agenttracer.privacy.policy import Removal, Scalar, check_value, classify_key


class Kind(str, Enum):
    """The shape of value an allow-listed key may hold; anything else is refused with a reason."""

    LABEL = "label"  # a short string (model, provider, tool name, finish reason)
    COUNT = "count"  # a non-negative integer (token counts)
    INT = "int"  # an integer (port, attempt number)
    NUMBER = "number"  # a finite int or float (temperature, cost)
    BOOL = "bool"
    LABELS = "labels"  # a list of short strings (finish reasons): an array, one string, or a JSON array string


@dataclass(frozen=True)
class Allowed:
    """An allow-listed attribute: ``store_as`` is the metadata key it is stored under (a key the
    privacy policy accepts, see ``tests/privacy/test_otel.py``), ``kind`` the value it may hold."""

    store_as: str
    kind: Kind


Kept = Scalar | tuple[str, ...]
Stored = Scalar | list[str]  # a LABELS value is stored as a JSON array of the labels

MAX_LABELS = 16  # entries of a LABELS value; longer lists are refused (too_long)
# A LABELS value sent as one string holding a JSON array (Logfire writes finish reasons so) is read as
# that array when it is at most this long; anything else in the string is one label.
MAX_LABELS_JSON = 1024

_L, _C, _I, _N, _B, _LS = Kind.LABEL, Kind.COUNT, Kind.INT, Kind.NUMBER, Kind.BOOL, Kind.LABELS


def _table(entries: Iterable[tuple[str, str, Kind]]) -> dict[str, Allowed]:
    return {key: Allowed(store_as, kind) for key, store_as, kind in entries}


# Where two keys store under the same name (the older and newer spelling of one convention, or
# GenAI and OpenInference), the one that comes first in the span's attributes is stored.
SPAN_ATTRIBUTES: Mapping[str, Allowed] = _table(
    [
        # GenAI semantic conventions: the operation and who served it.
        ("gen_ai.operation.name", "operation", _L),
        ("gen_ai.provider.name", "provider", _L),
        ("gen_ai.system", "provider", _L),  # the older name of gen_ai.provider.name
        ("gen_ai.request.model", "model", _L),
        ("gen_ai.response.model", "served_model", _L),
        ("gen_ai.response.finish_reasons", "finish_reasons", _LS),
        # Token usage (numbers only, whatever the key says).
        ("gen_ai.usage.input_tokens", "tokens_in", _C),
        ("gen_ai.usage.output_tokens", "tokens_out", _C),
        ("gen_ai.usage.prompt_tokens", "tokens_in", _C),  # older names
        ("gen_ai.usage.completion_tokens", "tokens_out", _C),
        ("gen_ai.usage.cache_read.input_tokens", "tokens_cache_read", _C),
        ("gen_ai.usage.cache_creation.input_tokens", "tokens_cache_write", _C),
        ("gen_ai.usage.reasoning.output_tokens", "tokens_reasoning", _C),
        ("gen_ai.embeddings.dimension.count", "embedding_dimensions", _C),
        # Request parameters: numbers and flags, never the request itself.
        ("gen_ai.request.temperature", "temperature", _N),
        ("gen_ai.request.top_p", "top_p", _N),
        ("gen_ai.request.top_k", "top_k", _N),
        ("gen_ai.request.max_tokens", "max_tokens", _C),
        ("gen_ai.request.choice.count", "choice_count", _C),
        ("gen_ai.request.stream", "stream", _B),
        # Agents, workflows and tools: names and ids.
        ("gen_ai.agent.name", "agent_name", _L),
        ("gen_ai.agent.id", "agent_ref", _L),
        ("gen_ai.agent.version", "agent_version", _L),
        ("gen_ai.workflow.name", "workflow", _L),
        ("gen_ai.tool.name", "tool_name", _L),
        ("gen_ai.tool.call.id", "tool_call_id", _L),
        ("gen_ai.tool.type", "tool_type", _L),
        # Errors and the remote end.
        ("error.type", "error_type", _L),
        ("server.address", "server_host", _L),
        ("server.port", "server_port", _I),
        ("http.response.status_code", "http_status", _I),
        ("http.request.method", "http_method", _L),
        # OpenInference.
        ("openinference.span.kind", "span_kind", _L),
        ("llm.model_name", "model", _L),
        ("llm.request.model_name", "model", _L),
        ("llm.response.model_name", "served_model", _L),
        ("llm.provider", "provider", _L),
        ("llm.system", "provider", _L),
        ("llm.finish_reason", "finish_reasons", _LS),
        ("llm.token_count.prompt", "tokens_in", _C),
        ("llm.token_count.completion", "tokens_out", _C),
        ("llm.token_count.total", "tokens_total", _C),
        ("llm.token_count.prompt_details.cache_read", "tokens_cache_read", _C),
        ("llm.token_count.prompt_details.cache_write", "tokens_cache_write", _C),
        ("llm.token_count.prompt_details.audio", "tokens_audio_in", _C),
        ("llm.token_count.completion_details.reasoning", "tokens_reasoning", _C),
        ("llm.token_count.completion_details.audio", "tokens_audio_out", _C),
        ("llm.cost.total", "cost_total", _N),
        ("embedding.model_name", "model", _L),
        ("reranker.model_name", "model", _L),
        ("reranker.top_k", "top_k", _N),
        ("tool.name", "tool_name", _L),
        ("tool.id", "tool_call_id", _L),
        ("tool_call.id", "tool_call_id", _L),
        ("tool_call.function.name", "tool_name", _L),
        ("agent.name", "agent_name", _L),
        # OpenLLMetry (Traceloop): the decorator kind and the decorated function's or workflow's name.
        # traceloop.entity.input/output hold content and are not listed.
        ("traceloop.span.kind", "traceloop_kind", _L),
        ("traceloop.entity.name", "entity_name", _L),
        ("traceloop.workflow.name", "workflow", _L),
        # The Vercel AI SDK (JavaScript): its operation, the function id the caller names the agent
        # by, the tool and model, usage and finish reason. ai.prompt*, ai.response.text/toolCalls and
        # ai.toolCall.args/result hold content and are not listed.
        ("ai.operationId", "ai_operation", _L),
        ("ai.telemetry.functionId", "agent_name", _L),
        ("ai.toolCall.name", "tool_name", _L),
        ("ai.toolCall.id", "tool_call_id", _L),
        ("ai.model.id", "model", _L),
        ("ai.model.provider", "provider", _L),
        ("ai.response.finishReason", "finish_reasons", _LS),
        ("ai.usage.inputTokens", "tokens_in", _C),
        ("ai.usage.outputTokens", "tokens_out", _C),
        ("ai.usage.promptTokens", "tokens_in", _C),  # AI SDK 4
        ("ai.usage.completionTokens", "tokens_out", _C),
        # Pydantic AI: its run-level agent name (instrumentation version 2) and retry bookkeeping.
        # A failed tool or output span carries the attempt it was (1 for the first call).
        ("agent_name", "agent_name", _L),
        ("model_name", "model", _L),
        ("gen_ai.aggregated_usage.input_tokens", "tokens_in", _C),  # a run's totals, on its agent span
        ("gen_ai.aggregated_usage.output_tokens", "tokens_out", _C),
        ("operation.cost", "cost_total", _N),
        ("pydantic_ai.tool.retry.attempt", "retry_attempt", _I),
        ("pydantic_ai.tool.retry.max_retries", "max_retries", _I),
        ("pydantic_ai.tool.retry.cause", "retry_cause", _L),
        ("pydantic_ai.output.retry.attempt", "retry_attempt", _I),
        ("pydantic_ai.output.retry.max_retries", "max_retries", _I),
        ("pydantic_ai.output.retry.cause", "retry_cause", _L),
    ]
)

# Resource attributes: who emitted the spans. Where several keys store under one name, the one listed
# first here wins (the OTLP mapping reads them in this order): an explicit agenttracer.environment
# before the current and then the older OpenTelemetry spelling. docs/otlp.md states how the run's agent
# id, version and environment are chosen from these and from the spans.
RESOURCE_ATTRIBUTES: Mapping[str, Allowed] = _table(
    [
        ("agenttracer.agent_id", "agent_id", _L),
        ("agenttracer.agent_version", "agent_version", _L),
        ("agenttracer.environment", "environment", _L),
        ("service.name", "service", _L),
        ("service.version", "service_version", _L),
        ("service.namespace", "service_namespace", _L),
        ("deployment.environment.name", "environment", _L),
        ("deployment.environment", "environment", _L),  # the older name
        ("telemetry.sdk.name", "sdk_name", _L),
        ("telemetry.sdk.language", "sdk_language", _L),
        ("telemetry.sdk.version", "sdk_version", _L),
        ("openinference.project.name", "project", _L),
        # AgentTracer's own project slug: read only to choose the run's project (never kept as metadata;
        # server/ingest/otlp_map.py sets it aside), checked against the slug rule and the ingest key.
        ("agenttracer.project", "agenttracer_project", _L),
    ]
)

# Of an ``exception`` span event only the class name is read; exception.message and
# exception.stacktrace carry content (the message often quotes the input) and are never read.
EXCEPTION_EVENT_ATTRIBUTES: Mapping[str, Allowed] = _table([("exception.type", "error_class", _L)])


def _stored_key_rules() -> dict[str, bool]:
    """Every stored key, checked once against the policy's key rules; whether it holds numbers only.
    A stored key the policy refuses is a programming error in the tables above."""
    rules: dict[str, bool] = {}
    for table in (SPAN_ATTRIBUTES, RESOURCE_ATTRIBUTES, EXCEPTION_EVENT_ATTRIBUTES):
        for entry in table.values():
            normalised, reason, numbers_only = classify_key(entry.store_as)
            if normalised != entry.store_as or reason is not None:
                raise ValueError(f"allow-list stores under {entry.store_as!r}, a key the privacy policy refuses")
            rules[entry.store_as] = numbers_only
    return rules


_NUMBERS_ONLY = _stored_key_rules()


@dataclass(frozen=True)
class Filtered:
    """The outcome of filtering one attribute mapping.

    ``kept``: OTel key -> value that passed (lists as tuples of strings).
    ``stored``: metadata key -> value, the first kept key for each ``store_as`` (lists as lists).
    ``dropped``: how many keys were not on the allow-list; their values were never read.
    ``removed``: allow-listed keys whose value was refused, by OTel key and reason code.
    """

    kept: dict[str, Kept]
    stored: dict[str, Stored]
    dropped: int
    removed: tuple[Removal, ...]

    @property
    def dropped_total(self) -> int:
        """Every key that did not survive: dropped unread plus refused by the policy."""
        return self.dropped + len(self.removed)


_MAX_SAFE_INT = 2**53 - 1


def _labels_of(value: object) -> tuple[tuple[str, ...] | None, str | None]:
    """A LABELS value as a tuple of strings, or ``(None, reason)`` when its shape is wrong."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.startswith("[") and text.endswith("]") and len(text) <= MAX_LABELS_JSON):
            return (value,), None
        try:
            parsed: object = json.loads(text)
        except ValueError:
            return (value,), None
        value = parsed
    if not isinstance(value, (list, tuple)):
        return None, R.UNSUPPORTED_TYPE
    if len(value) > MAX_LABELS:
        return None, R.TOO_LONG
    if not all(isinstance(item, str) for item in value):
        return None, R.UNSUPPORTED_TYPE
    return tuple(value), None


def _judge_labels(value: object, numbers_only: bool) -> tuple[list[str] | None, str | None]:
    """Each label of a LABELS value through the one policy; one refused label refuses the value."""
    labels, reason = _labels_of(value)
    if labels is None:
        return None, reason
    stored: list[str] = []
    for label in labels:
        kept, reason = check_value(label, numbers_only)
        if not isinstance(kept, str):
            return None, reason or R.UNSUPPORTED_TYPE
        stored.append(kept)
    return stored, None


def _shape(value: object, kind: Kind) -> tuple[Scalar | None, str | None]:
    """The value as the scalar the policy will judge, or ``(None, reason)`` when its shape is wrong."""
    if kind is Kind.LABEL:
        return (value, None) if isinstance(value, str) else (None, R.UNSUPPORTED_TYPE)
    if kind is Kind.BOOL:
        return (value, None) if isinstance(value, bool) else (None, R.UNSUPPORTED_TYPE)
    if isinstance(value, bool):
        return None, R.UNSUPPORTED_TYPE
    if isinstance(value, float):
        if not math.isfinite(value):
            return None, R.NON_FINITE
        if kind is not Kind.NUMBER:
            if not value.is_integer():
                return None, R.UNSUPPORTED_TYPE
            value = int(value)
    if not isinstance(value, (int, float)):
        return None, R.UNSUPPORTED_TYPE
    if isinstance(value, int) and not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
        return None, R.INT_OUT_OF_RANGE
    if kind is Kind.COUNT and value < 0:
        return None, R.INT_OUT_OF_RANGE
    return value, None


def filter_attributes(attributes: Mapping[str, object] | None, allowed: Mapping[str, Allowed]) -> Filtered:
    """Keep the allow-listed attributes that pass the privacy policy; count the rest by key.

    Total: never raises. On an internal error it keeps nothing and reports one ``policy_error``.
    """
    try:
        return _filter(attributes, allowed)
    except Exception:
        return Filtered({}, {}, 0, (Removal("[attributes]", R.POLICY_ERROR),))


def _filter(attributes: Mapping[str, object] | None, allowed: Mapping[str, Allowed]) -> Filtered:
    if not attributes:
        return Filtered({}, {}, 0, ())
    dropped = 0
    removed: list[Removal] = []
    kept: dict[str, Kept] = {}
    stored: dict[str, Stored] = {}
    for key in attributes:
        entry = allowed.get(key) if type(key) is str else None
        if entry is None:
            dropped += 1  # never read: the value of an unknown key may be content
            continue
        value, reason = judge(entry, attributes[key])
        if value is None:
            removed.append(Removal(key, reason or R.UNSUPPORTED_TYPE))
            continue
        kept[key] = _unshape(value)
        if entry.store_as not in stored:
            stored[entry.store_as] = value
    return Filtered(kept, stored, dropped, tuple(removed))


_SMALL_INT = 10**8  # integers the policy keeps without further checks (no card or phone number fits)
_LABEL_CACHE_LIMIT = 4096
_labels: dict[str, Scalar] = {}


def judge(entry: Allowed, value: object) -> tuple[Stored | None, str | None]:
    """One allow-listed attribute's value as stored (``(value, None)``) or refused (``(None, reason)``):
    the shape its kind allows, then the one policy's value rules under the stored key's own rule.

    The decisions that keep the commonest values (a label seen before, a small integer count) are
    taken from a bounded cache or directly: they are what the rules decide for them. Refusals are
    never cached. Total: never raises.
    """
    try:
        kind = entry.kind
        kind_type = type(value)
        if kind_type is str and kind is Kind.LABEL:
            hit = _labels.get(value)  # type: ignore[call-overload]
            if hit is not None:
                return hit, None
        elif kind_type is int and (kind is Kind.COUNT or kind is Kind.INT) and 0 <= value < _SMALL_INT:  # type: ignore[operator]
            return value, None  # type: ignore[return-value]
        if kind is Kind.LABELS:
            return _judge_labels(value, _NUMBERS_ONLY[entry.store_as])
        shaped, reason = _shape(value, kind)
        if shaped is None:
            return None, reason
        stored, reason = check_value(shaped, _NUMBERS_ONLY[entry.store_as])
        if stored is not None and kind is Kind.LABEL and isinstance(value, str) and len(value) <= 64:
            if len(_labels) >= _LABEL_CACHE_LIMIT:
                _labels.clear()
            _labels[value] = stored
        return stored, reason
    except Exception:
        return None, R.POLICY_ERROR


def _unshape(value: Stored) -> Kept:
    return tuple(value) if isinstance(value, list) else value


_RETRY_TAG = re.compile(r"retry:attempt:([1-9][0-9]{0,5})")


def retry_attempt_from_tags(tags: object) -> int | None:
    """The attempt number of a LangChain ``retry:attempt:N`` tag (OpenInference ``tag.tags``), else None.

    Tags are free text chosen by the user, so nothing of them is kept: each tag is only matched
    whole against the pattern, and only the number is returned.
    """
    if not isinstance(tags, (list, tuple)):
        return None
    for tag in tags[:MAX_LABELS * 4]:
        if isinstance(tag, str) and len(tag) <= 24:
            match = _RETRY_TAG.fullmatch(tag)
            if match:
                return int(match.group(1))
    return None
