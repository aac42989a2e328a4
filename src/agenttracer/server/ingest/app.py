"""The Ingest API (:8000): write-only. ``POST /v1/ingest`` stores a batch of events; ``POST /v1/traces``
takes OTLP trace exports (``otlp_route.py``); ``GET /health``.

Contract for clients (the SDK relies on it):

- Request: ``Content-Type: application/json`` (else **415**), optionally ``Content-Encoding: gzip``;
  body ``{"events": [EVENT, ...], "project": "<slug>"?}`` with the events of ``agenttracer.model``'s wire
  shape. The batch's project is decided by ``server/ingest/project.py`` (the ingest key's; without keys
  the ``project`` field or the ``X-AgentTracer-Project`` header, else ``default``): **403** when it names
  another project than the key's, nothing stored. An event of a run stored under another project is
  ``rejected`` (field ``run_id``).
  At most 1000 events and 5 MiB after decompression (else **413**, also for a gzip bomb, which is
  refused without being inflated).
- Envelope problems answer for the whole request, in the APIs' one error shape (``server/errors.py``:
  ``{"error", "field", "rule", "message", "detail"}``):
  **400** the body is not JSON (or not valid gzip), **422** it is JSON but not an object with an
  ``events`` list of 1..1000 entries, **413** / **415** as above.
- Otherwise every event is validated and stored on its own (partial success). The answer comes after
  the commit: ``{"accepted", "duplicates", "rejected", "removed", "results": [...]}`` with one result
  per event, in order: ``{"index", "status", "type", "run_id", "seq", "errors", "removed"}`` where
  ``status`` is ``accepted`` (stored now), ``duplicate`` (already stored: replays are harmless) or
  ``rejected`` (``errors`` lists ``{"field", "rule", "code"}``, ``code`` naming one of the input
  rules of ``agenttracer.model``; the event was not stored and resending it will not help). An
  unexpected error on one event rejects that event alone (``internal_error``); the rest is stored.
  ``removed`` lists ``{"key", "reason"}`` for metadata keys or fields the privacy policy dropped
  before storage (by key and reason code, never the value); such an event is still accepted.
- Status: **200** when at least one event was accepted or was a duplicate; **422** when every event
  was rejected. Clients should count ``rejected`` results as dropped and never retry them.
- **503** with ``Retry-After`` when the database is unavailable, or when the server is busy: a write
  slot did not free up in time, or too many bodies are held at once (nothing was stored: retry the
  batch). **429** with ``Retry-After`` when the client (its API key, else its address) already has
  ``AGENTTRACER_MAX_REQUESTS_PER_CLIENT`` write requests in progress; **408** (and the connection
  closed) when the body did not arrive whole within ``AGENTTRACER_BODY_TIMEOUT_SECONDS``. The body is
  read before a write slot is taken (``admission.py``). Bad input never yields a 500.

``GET /health`` answers 200 ``{"status": "ok", "service": "ingest", "database": "ok", "backend": …}``
when the database answers and takes writes, else 503 with ``Retry-After`` and the error's class name in
``detail`` — the same shape as the Query API's. ``database`` is ``unreachable`` when it cannot be
reached, ``not_writable`` when it answers but refuses a write (a probe write, rolled back: read-only
database, permissions) or when the last batch write failed on the database and no batch has been
stored since — however long ago that was: a full disk fails the writes that need new space, which a
probe need not, so only a stored batch shows that the fault is gone.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from agenttracer.model import MAX_BATCH_EVENTS, PROJECT_HEADER
from agenttracer.server import errors, wire
from agenttracer.server.auth import ANONYMOUS, Principal, auth_dependency, principal_of
from agenttracer.server.errors import (
    RETRY_AFTER_SECONDS,
    database_unavailable,
    health_response,
    json_response,
)
from agenttracer.server.failsafe import Failsafe, describe_exception
from agenttracer.server.ingest.admission import Admission, Limits, settle
from agenttracer.server.ingest.body import Problem, parse_json
from agenttracer.server.ingest.events import INTERNAL_ERROR_RULE, convert_event
from agenttracer.server.ingest.metrics import IngestMetrics
from agenttracer.server.ingest.otlp_route import add_traces_route
from agenttracer.server.ingest.project import write_project
from agenttracer.server.observe import count_db_error, install
from agenttracer.server.settings import Settings
from agenttracer.store import open_store
from agenttracer.store.interface import Store
from agenttracer.store.records import WriteReport
from agenttracer.store.run_state import Incoming, Outcome

log = logging.getLogger("agenttracer.ingest")

_TYPE_AND_STATUS = itemgetter("type", "status")
_REMOVED = itemgetter("removed")
# A batch's counts on the request's log line.
_COUNTS = ("accepted", "duplicates", "rejected", "removed")


def _unavailable(exc: BaseException) -> Response:
    return database_unavailable("ingest", exc, "database: unavailable, retry later",
                                "must be reachable; nothing was stored, retry later")


def process_batch(
    store: Store,
    body: bytes,
    metrics: IngestMetrics | None = None,
    principal: Principal = ANONYMOUS,
    header_project: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Parse, validate, scrub and store one request body of ``principal`` (``header_project``: the
    request's X-AgentTracer-Project). Returns (HTTP status, response body). With ``metrics``, the stored
    batch is counted there."""
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise Problem(422, "invalid_envelope", "body", 'must be a JSON object {"events": [...]}')
    events = doc.get("events")
    if not isinstance(events, list):
        raise Problem(422, "invalid_envelope", "events", "is required and must be a list of event objects")
    if len(events) > MAX_BATCH_EVENTS:
        raise Problem(413, "payload_too_large", "events", f"must hold at most {MAX_BATCH_EVENTS} events per request")
    if not events:
        raise Problem(422, "invalid_envelope", "events", "must hold at least 1 event")
    project = write_project(principal, [(PROJECT_HEADER, header_project), ("project", doc.get("project"))])

    now = datetime.now(timezone.utc)
    results: list[dict[str, Any]] = []
    incoming: list[Incoming] = []
    for index, raw in enumerate(events):
        result, item = convert_event(index, raw, now)
        results.append(result)
        if item is not None:
            incoming.append(item)

    report = WriteReport() if metrics is not None else None
    started = time.perf_counter()
    for outcome in _store(store, incoming, now, report, project):
        result = results[outcome.index]
        result["status"] = outcome.status
        if outcome.status == "rejected":
            code = "internal_error" if outcome.rule == INTERNAL_ERROR_RULE else "conflict"
            result["errors"].append(
                {"field": outcome.field or "event", "rule": outcome.rule or "rejected", "code": code}
            )

    # One C-level pass for the answer's counts and the metrics' (type, status) tally alike.
    outcomes = Counter(map(_TYPE_AND_STATUS, results))
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for (_, outcome), n in outcomes.items():
        counts[outcome] += n
    removed = sum(map(len, map(_REMOVED, results)))
    status = 200 if counts["accepted"] or counts["duplicate"] else 422
    if metrics is not None and report is not None:
        metrics.record_batch(results, outcomes, removed, incoming, report, time.perf_counter() - started, project)
    return status, {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "removed": removed,
        "results": results,
    }


def _store(
    store: Store, incoming: list[Incoming], now: datetime, report: WriteReport | None, project: str
) -> list[Outcome]:
    """``write_batch``, total: when the batch fails for a reason other than a database that cannot take
    writes now (that is a 503), each event is stored on its own so that only the event(s) that fail
    are rejected (``internal_error``).

    Slow (one transaction per event) but only ever taken after a server bug; the log names the bug.
    """
    try:
        return store.write_batch(incoming, now=now, report=report, project=project)
    except Exception as exc:
        if store.cannot_write(exc):
            raise
        log.error("ingest: a batch of %d events failed (%s): storing them one by one", len(incoming),
                  describe_exception(exc))
    outcomes: list[Outcome] = []
    for item in incoming:
        try:
            outcomes += store.write_batch([item], now=now, report=report, project=project)
        except Exception as exc:
            if store.cannot_write(exc):
                raise
            log.error("ingest: event %d could not be stored (%s): rejected it alone", item.index,
                      describe_exception(exc))
            outcomes.append(Outcome(item.index, "rejected", "event", INTERNAL_ERROR_RULE))
    return outcomes


def _document_request_body(app: FastAPI) -> dict[str, Any]:
    """The request body schema for /docs (the handler reads the raw body to enforce the limits itself),
    with the event models registered as shared components."""
    schema = wire.IngestRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = default_openapi()
            spec.setdefault("components", {}).setdefault("schemas", {}).update(definitions)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_app(settings: Settings, *, store: Store | None = None, limits: Limits | None = None) -> FastAPI:
    """The write-only Ingest API bound to ``settings.database_url`` (or to ``store``, which it then closes
    at shutdown as well). ``limits``: the write routes' admission limits (default: from ``settings``)."""
    if store is None:
        store = open_store(settings.database_url)
    opened = store

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        opened.close()

    app = FastAPI(
        title="AgentTracer Ingest API",
        version="1",
        description="Write-only: batches of run, step and failure events from the SDK.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings
    # Failsafe first, so it is inside the metrics middleware, which then counts its 500s.
    app.add_middleware(Failsafe)
    metrics = (
        IngestMetrics(settings.metrics_max_agent_series, settings.metrics_agent_series_idle_seconds)
        if settings.metrics_enabled else None
    )
    install(app, settings, store, metrics)
    errors.install(app)
    admission = Admission(limits or Limits.from_settings(settings), metrics.busy.inc if metrics else None)
    app.state.admission = admission
    write_failure: list[Any] = []  # [error class name, monotonic time] of the last failed batch write

    @app.exception_handler(Problem)
    async def _problem(_request: Request, exc: Problem) -> Response:
        return json_response(exc.status, exc.body(), exc.headers)

    async def _db_down(_request: Request, exc: Exception) -> Response:
        # Also reached from the auth dependency, which queries the database before the handler runs.
        count_db_error(app, exc)
        return _unavailable(exc)

    for kind in store.unavailable_errors:
        app.add_exception_handler(kind, _db_down)

    # Both write routes: the same keys and rate limit, the same handling of a database that fails.
    on_rate_limited = metrics.rate_limited.inc if metrics else None
    auth = [Depends(auth_dependency(settings, store, "ingest", on_rate_limited=on_rate_limited))]

    def db_failed(exc: Exception) -> bool:
        """Count a database error of a write; True when the client should retry later (nothing was
        stored), False when it is not the database's state but a fault to surface."""
        count_db_error(app, exc)
        if not opened.cannot_write(exc):
            return False
        write_failure[:] = [type(getattr(exc, "orig", None) or exc).__name__, time.monotonic()]
        return True

    @app.post(
        "/v1/ingest",
        summary="Store a batch of run, step and failure events (partial success, idempotent).",
        response_model=wire.IngestResponse,
        responses={
            400: {"model": wire.ApiError, "description": "The body is not JSON or not valid gzip."},
            413: {"model": wire.ApiError, "description": "More than 1000 events or 5 MiB after decompression."},
            415: {"model": wire.ApiError, "description": "Not application/json, or an unknown Content-Encoding."},
            422: {
                "content": {"application/json": {"schema": {"anyOf": [
                    {"$ref": "#/components/schemas/IngestResponse"},
                    {"$ref": "#/components/schemas/ApiError"},
                ]}}},
                "description": "Every event was rejected (an IngestResponse), or the envelope is not "
                "{\"events\": [1..1000 events]} (an ApiError).",
            },
            408: {"model": wire.ApiError, "description": "The body did not arrive whole in time; nothing was "
                  "stored and the connection is closed."},
            429: {"model": wire.ApiError, "description": "This client (key, else address) already has its share of "
                  "requests in progress, or passed its rate limit; retry after Retry-After."},
            503: {"model": wire.ApiError, "description": "The database is unavailable or the server busy; retry "
                  "after Retry-After."},
        },
        openapi_extra=_document_request_body(app),
        dependencies=auth,
    )
    async def ingest(request: Request) -> Response:
        try:
            async with admission.request(request) as body:
                status, payload = await settle(
                    process_batch, store, body, metrics, principal_of(request), request.headers.get(PROJECT_HEADER)
                )
        except store.database_errors as exc:
            if not db_failed(exc):
                raise
            return _unavailable(exc)
        write_failure.clear()
        request.state.counts = {key: payload[key] for key in _COUNTS}
        return json_response(status, payload)

    add_traces_route(
        app, store, admission, auth, db_failed, write_failure.clear, metrics, RETRY_AFTER_SECONDS,
    )

    @app.get("/health", summary="Liveness, database reachability and whether it takes writes.",
             response_model=wire.HealthResponse,
             responses={503: {"model": wire.HealthResponse, "description": "The database is unreachable or "
                              "refuses writes."}})
    async def health() -> Response:
        backend = opened.backend

        def down(database: str, detail: str) -> Response:
            return health_response("ingest", backend, database, detail)

        try:
            await run_in_threadpool(opened.ping)
        except Exception as exc:  # any failure to reach the database means "down"
            count_db_error(app, exc)
            return down("unreachable", type(exc).__name__)
        if write_failure:
            age = time.monotonic() - write_failure[1]
            return down("not_writable", f"{write_failure[0]}: the last batch write failed {age:.0f} s ago and "
                        "none has been stored since")
        try:
            await run_in_threadpool(opened.probe_write)
        except Exception as exc:  # the database answers but will not write: ingest cannot work
            count_db_error(app, exc)
            return down("not_writable", f"{type(exc).__name__}: the database refuses writes")
        return health_response("ingest", backend)

    return app

