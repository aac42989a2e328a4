"""OpenTelemetry: ``MetadataOnlySpanExporter(exporter)`` strips content from spans before they leave the process.

It wraps any ``SpanExporter`` (typically ``OTLPSpanExporter`` pointed at AgentTracer's ``/v1/traces``)
and hands it rebuilt spans that hold only what the allow-list of ``agenttracer.privacy.otel`` keeps —
the one list the Ingest API applies to ``/v1/traces`` too:

* span attributes: only allow-listed keys whose values pass the privacy policy; every other key is
  dropped without its value being read;
* resource attributes: likewise, with the resource allow-list; instrumentation-scope attributes: none;
* events: name and time only, except ``exception`` events, which keep ``exception.type`` (never the
  message or the stack trace);
* links: the linked span context only; status: the code only (never the description);
* an error span whose class names and HTTP status say nothing specific, but whose status description
  or exception message holds a provider's status or rate-limit wording, gets the code that wording
  stands for as ``error.type`` (``failure_codes.failure_code_for_message``, the server's rule for the
  messages it would otherwise have matched itself); nothing of the message is kept;
* the span name passes the same name policy as step names (a name holding PII or prose is redacted).

Ids, parents, kinds and times are kept, so traces stay whole. A span that cannot be rebuilt is dropped
(counted), never exported as it was. Use it with a ``BatchSpanProcessor``: the rebuild then happens in
the processor's worker thread, off the agent's path.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from agenttracer import privacy
from agenttracer.failure_codes import FALLBACK_CODES, failure_code_for_class_name, failure_code_for_message
from agenttracer.integrations._common import missing_framework
from agenttracer.model import FAILURE_CODES
from agenttracer.privacy.otel import (
    EXCEPTION_EVENT_ATTRIBUTES,
    RESOURCE_ATTRIBUTES,
    SPAN_ATTRIBUTES,
    Allowed,
    filter_attributes,
)

try:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise missing_framework("otel", "opentelemetry-sdk") from exc

_EXCEPTION_EVENT = "exception"
_ERROR_TYPE, _HTTP_STATUS, _EXCEPTION_TYPE, _EXCEPTION_MESSAGE = (
    "error.type", "http.response.status_code", "exception.type", "exception.message")
_RESOURCE_CACHE = 64  # distinct Resource objects remembered (a process usually has one)


class MetadataOnlySpanExporter(SpanExporter):
    """A ``SpanExporter`` that exports through ``exporter`` only what the allow-list keeps (see above).

    ``stats()`` counts spans exported and dropped, and attribute keys dropped unread or refused by the
    policy (numbers only, never keys' values).
    """

    def __init__(self, exporter: SpanExporter) -> None:
        if not isinstance(exporter, SpanExporter):
            raise TypeError("MetadataOnlySpanExporter wraps an opentelemetry SpanExporter")
        self._exporter = exporter
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._resources: dict[int, tuple[Resource, Resource]] = {}

    def stats(self) -> dict[str, int]:
        """``spans_exported``, ``spans_dropped``, ``attributes_dropped`` (not allow-listed, never read) and
        ``attributes_refused`` (allow-listed, refused by the policy)."""
        with self._lock:
            return dict(self._counts)

    # ----------------------------------------------------------------- export

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        counts: Counter[str] = Counter()
        clean = []
        for span in spans:
            try:
                clean.append(self._rebuild(span, counts))
            except Exception:  # fail closed: a span we cannot rebuild is not exported at all
                counts["spans_dropped"] += 1
        counts["spans_exported"] += len(clean)
        with self._lock:
            self._counts.update(counts)
        if not clean:
            return SpanExportResult.SUCCESS
        return self._exporter.export(clean)

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self._exporter.force_flush(timeout_millis))

    # ---------------------------------------------------------------- rebuild

    def _rebuild(self, span: ReadableSpan, counts: Counter[str]) -> ReadableSpan:
        name, _reason = privacy.scrub_name(span.name if isinstance(span.name, str) else "span")
        events = [self._event(event, counts) for event in span.events or ()]
        links = [Link(link.context) for link in span.links or ()]
        counts["attributes_dropped"] += sum(len(link.attributes or {}) for link in span.links or ())
        status = span.status
        scope = span.instrumentation_scope
        attributes = _filtered(span.attributes, SPAN_ATTRIBUTES, counts)
        if status is not None and status.status_code is StatusCode.ERROR:
            code = _code_from_messages(span, attributes, events)
            if code is not None:
                attributes[_ERROR_TYPE] = code
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=self._resource(span.resource, counts),
            attributes=attributes,
            events=events,
            links=links,
            kind=span.kind,
            status=Status(status.status_code) if status is not None else Status(),
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=InstrumentationScope(scope.name, scope.version, scope.schema_url)
            if scope is not None else None,
        )

    def _event(self, event: Any, counts: Counter[str]) -> Event:
        if event.name == _EXCEPTION_EVENT:
            attributes = _filtered(event.attributes, EXCEPTION_EVENT_ATTRIBUTES, counts)
        else:
            attributes = {}
            counts["attributes_dropped"] += len(event.attributes or {})
        return Event(event.name, attributes, event.timestamp)

    def _resource(self, resource: Resource | None, counts: Counter[str]) -> Resource:
        if resource is None:
            return Resource({})
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        clean = Resource(_filtered(resource.attributes, RESOURCE_ATTRIBUTES, counts), resource.schema_url)
        if len(self._resources) >= _RESOURCE_CACHE:
            self._resources.clear()
        self._resources[id(resource)] = (resource, clean)
        return clean


def _code_from_messages(span: ReadableSpan, attributes: Mapping[str, Any], events: Sequence[Event]) -> str | None:
    """The code a provider's wording in an error span's status description or exception message stands
    for, when its kept class names and HTTP status say nothing specific (the server's precedence)."""
    if _HTTP_STATUS in attributes or attributes.get(_ERROR_TYPE) in FAILURE_CODES:
        return None
    names = [attributes.get(_ERROR_TYPE), *((e.attributes or {}).get(_EXCEPTION_TYPE) for e in events)]
    if any(isinstance(n, str) and failure_code_for_class_name(n) not in FALLBACK_CODES for n in names):
        return None
    messages = [span.status.description, *((e.attributes or {}).get(_EXCEPTION_MESSAGE)
                                           for e in span.events or () if e.name == _EXCEPTION_EVENT)]
    for message in messages:
        code = failure_code_for_message(message)
        if code is not None:
            return code
    return None


def _filtered(attributes: Mapping[str, Any] | None, allowed: Mapping[str, Allowed],
              counts: Counter[str]) -> dict[str, Any]:
    result = filter_attributes(attributes, allowed)
    counts["attributes_dropped"] += result.dropped
    counts["attributes_refused"] += len(result.removed)
    return dict(result.kept)  # lists are tuples of strings, as the SDK itself keeps sequences
