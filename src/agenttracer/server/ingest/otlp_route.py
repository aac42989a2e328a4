"""``POST /v1/traces``: OTLP/HTTP trace export on the Ingest API.

Contract (the OTLP/HTTP specification's, so that stock exporters behave):

- Auth exactly as ``/v1/ingest`` (``Authorization: Bearer <key>`` — what ``OTEL_EXPORTER_OTLP_HEADERS``
  sends — or ``X-API-Key``), the same per-key rate limit (429 with ``Retry-After``).
- Body: ``application/x-protobuf`` or ``application/json`` (OTLP/JSON), else **415**; optionally
  ``Content-Encoding: gzip`` or ``deflate``; at most 5 MiB after decompression (else **413**, a
  compression bomb included, refused without being inflated). An undecodable body is **400**.
- The spans' project: the ingest key's; without keys a resource's ``agenttracer.project`` attribute, else
  the ``X-AgentTracer-Project`` header, else ``default`` (``server/ingest/project.py``). **403** when a
  resource or the header names another project than the key's; nothing of the request is stored then.
- **200** with an ``ExportTraceServiceResponse`` in the request's format once the spans are
  committed. ``partial_success.rejected_spans`` counts spans refused (bad ids or times) and its
  ``error_message`` names their positions and rules and how many attribute keys, events and links
  were dropped — counts and positions only, never a value. Stock exporters do not retry a 200.
- **503** with ``Retry-After`` when the database is unavailable or the server is busy: nothing was
  stored, the exporter retries. Errors carry ``google.rpc.Status`` in the request's format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from agenttracer.model import MAX_SEQ, PROJECT_HEADER, PROJECT_RESOURCE_ATTRIBUTE
from agenttracer.server.auth import ANONYMOUS, Principal, principal_of
from agenttracer.server.ingest.admission import Admission, settle
from agenttracer.server.ingest.body import Problem
from agenttracer.server.ingest.metrics import IngestMetrics
from agenttracer.server.ingest.otlp_decode import (
    MEDIA_TYPES,
    decode_request,
    encode_problem,
    encode_response,
    response_media,
)
from agenttracer.server.ingest.otlp_map import map_request
from agenttracer.server.ingest.project import write_project
from agenttracer.store.interface import Store
from agenttracer.store.otlp_assemble import SpanRecord
from agenttracer.store.records import Written

log = logging.getLogger("agenttracer.ingest.otlp")

MAX_LISTED_REJECTIONS = 3  # positions of refused spans named in the message; the rest are counted


@dataclass(frozen=True)
class TracesOutcome:
    """One export request's result: the encoded answer and the counts for metrics and the log line."""

    body: bytes
    written: Written
    rejected: int  # refused by the mapping or the writer
    dropped: int
    projects: dict[str, str]  # run_id -> the project its spans went to (for the agent-level series)


def _by_project(principal: Principal, header: str | None, spans: list[SpanRecord]) -> dict[str, list[SpanRecord]]:
    """The request's spans by the project each goes into; raises Problem (nothing stored) when one is refused."""
    chosen: dict[object, str] = {}  # a resource's raw project attribute -> the project
    out: dict[str, list[SpanRecord]] = {}
    for span in spans:
        raw = span.resource.project if span.resource is not None else None
        project = chosen.get(raw)
        if project is None:
            # A resource's own attribute wins over the request's header when there is no key.
            named = [(f"resource.{PROJECT_RESOURCE_ATTRIBUTE}", raw)] if raw is not None else []
            named = named or [(PROJECT_HEADER, header)]
            if principal.key_id is not None:
                named = [(PROJECT_HEADER, header), *named]
            project = chosen[raw] = write_project(principal, named, invalid_status=400)
        out.setdefault(project, []).append(span)
    return out


def process_traces(
    store: Store, body: bytes, media: str, principal: Principal = ANONYMOUS, header_project: str | None = None
) -> TracesOutcome:
    """Decode, map, scrub and store one export request of ``principal``."""
    request = decode_request(body, media)
    now = datetime.now(timezone.utc)
    mapped = map_request(request, now)
    if header_project is not None:
        write_project(principal, [(PROJECT_HEADER, header_project)], invalid_status=400)
    written = Written()
    projects: dict[str, str] = {}
    for project, spans in _by_project(principal, header_project, mapped.spans).items():
        projects.update((span.run_id, project) for span in spans)
        part = store.write_spans(spans, now, project=project)
        written.accepted += part.accepted
        written.duplicates += part.duplicates
        written.rejected += part.rejected
        written.other_source += part.other_source
        written.identities.update(part.identities)
        written.settled += part.settled
        written.failed += part.failed
        written.steps += part.steps
    rejected = len(mapped.rejected) + written.rejected
    parts = []
    if mapped.rejected:
        listed = "; ".join(f"{r.where}.{r.field}: {r.rule}" for r in mapped.rejected[:MAX_LISTED_REJECTIONS])
        more = len(mapped.rejected) - MAX_LISTED_REJECTIONS
        parts.append(f"{len(mapped.rejected)} spans refused: {listed}" + (f"; and {more} more" if more > 0 else ""))
    if written.other_source:
        parts.append(
            f"{written.other_source} spans refused: traceId is the run_id of a run sent by the SDK (POST /v1/ingest); "
            "a run is written by one source only"
        )
    if written.rejected > written.other_source:
        parts.append(
            f"{written.rejected - written.other_source} spans refused: traceId is the run_id of another project's "
            f"run, or the run would hold more than {MAX_SEQ} steps"
        )
    if mapped.dropped:
        parts.append(
            f"{mapped.dropped} attribute keys, events and links dropped (not on the allow-list, or refused by the "
            "privacy policy; see docs/otlp.md)"
        )
    encoded = encode_response(media, rejected, ". ".join(parts))
    return TracesOutcome(encoded, written, rejected, mapped.dropped, projects)


# What /docs (and the schemathesis run in tests/server) know of the OTLP messages: their outline. The
# protobuf form is opaque bytes; the OTLP specification is the reference for both.
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_REQUEST = {
    "application/x-protobuf": _BINARY,
    "application/json": {"schema": {"type": "object", "properties": {"resourceSpans": {"type": "array"}}}},
}
_ANSWER = {
    "application/x-protobuf": _BINARY,
    "application/json": {"schema": {"type": "object", "properties": {"partialSuccess": {"type": "object"}}}},
}
_STATUS = {
    "application/x-protobuf": _BINARY,
    "application/json": {"schema": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "integer"}, "message": {"type": "string"}, "error": {"type": "string"},
        "field": {"type": "string"}, "rule": {"type": "string"}}}},
}


def add_traces_route(
    app: FastAPI,
    store: Store,
    admission: Admission,
    auth: list[Any],
    db_failed: Callable[[Exception], bool],
    on_stored: Callable[[], None],
    metrics: IngestMetrics | None,
    retry_after: int,
) -> None:
    """Register ``POST /v1/traces`` on the Ingest API, sharing ``/v1/ingest``'s auth dependencies, admission
    (``admission.py``: client share, body before slot, write slots) and handling of database failures
    (``db_failed``: counts the error; True when the client should retry later). ``retry_after``: the Ingest
    API's Retry-After in seconds."""
    database_errors = store.database_errors

    def _status(media: str, problem: Problem) -> Response:
        return Response(
            encode_problem(media, problem), status_code=problem.status, media_type=media, headers=problem.headers
        )

    def _retry_later(media: str, field: str, rule: str) -> Response:
        return _status(media, Problem(503, "unavailable", field, rule, {"Retry-After": str(retry_after)}))

    @app.post(
        "/v1/traces",
        summary="OTLP/HTTP trace export (protobuf or JSON): spans become runs and steps; content is dropped.",
        responses={
            200: {"description": "ExportTraceServiceResponse (partial_success when spans were refused).",
                  "content": _ANSWER},
            400: {"description": "The body is not a decodable ExportTraceServiceRequest, or names a malformed "
                  "project.", "content": _STATUS},
            403: {"description": "A resource or the header names another project than the ingest key's; "
                  "nothing was stored.", "content": _STATUS},
            408: {"description": "The body did not arrive whole in time; the connection is closed.",
                  "content": _STATUS},
            413: {"description": "More than 5 MiB after decompression.", "content": _STATUS},
            415: {"description": "Not application/x-protobuf or application/json, or an unknown encoding.",
                  "content": _STATUS},
            429: {"description": "This client already has its share of requests in progress, or passed its rate "
                  "limit; retry after Retry-After.", "content": _STATUS,
                  "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
            503: {"description": "The database is unavailable or the server busy; retry after Retry-After.",
                  "content": _STATUS, "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
        },
        openapi_extra={"requestBody": {"required": True, "content": _REQUEST}},
        dependencies=auth,
    )
    async def traces(request: Request) -> Response:
        media = response_media(request.headers.get("content-type", ""))
        try:
            async with admission.request(request, MEDIA_TYPES) as body:
                outcome = await settle(
                    process_traces, store, body, media, principal_of(request), request.headers.get(PROJECT_HEADER)
                )
        except Problem as problem:
            return _status(media, problem)
        except database_errors as exc:
            if not db_failed(exc):
                raise
            log.warning("otlp: database unavailable (%s)", type(getattr(exc, "orig", None) or exc).__name__)
            return _retry_later(media, "database", "unavailable; nothing was stored, retry later")
        on_stored()
        if metrics is not None:
            metrics.record_otlp(outcome.written, outcome.rejected, outcome.dropped, outcome.projects)
        request.state.counts = {
            "accepted": outcome.written.accepted,
            "duplicates": outcome.written.duplicates,
            "rejected": outcome.rejected,
            "removed": outcome.dropped,
        }
        return Response(outcome.body, status_code=200, media_type=media)
