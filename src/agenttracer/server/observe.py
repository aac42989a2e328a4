"""What both APIs do around every request: its request id, its metrics, its log line; and ``GET /metrics``.

``install(app, settings, store, metrics)`` is called once by each ``create_app``:

- **Request id.** ``X-Request-ID`` from the client is kept when it is 1..128 characters of
  ``[A-Za-z0-9._:-]`` that the privacy policy keeps verbatim; otherwise (absent, too long, another
  character, something that looks like personal data or a secret) a new one is generated and the
  client's value is neither echoed nor logged. The id is sent back in the response's
  ``X-Request-ID`` and is on every log record written while the request is served.
- **Metrics** (when ``AGENTTRACER_METRICS_ENABLED``, the default): requests by route template, method
  and status, and their duration (``server/metrics.py``).
- **Log line.** Each request ends with one record of logger ``agenttracer.access``, event
  ``request``: method, route template (never the raw path or the query string), status,
  duration_ms and, for an ingest batch, its counts (accepted, duplicates, rejected, removed) —
  INFO for API routes, DEBUG for ``/health`` and ``/metrics``, which probes and scrapers call every
  few seconds.
- **``GET /metrics``** in the Prometheus text format, on the API's own port (one address per process
  to scrape and to firewall). With ``AGENTTRACER_METRICS_TOKEN`` set it demands exactly that bearer
  token, compared in constant time without the database, so scrapes go on while the database is
  down. Without it, /metrics is guarded like the APIs: while keys are required
  (``AGENTTRACER_REQUIRE_AUTH=1`` or any key exists) it needs a key of scope ``read`` on BOTH APIs —
  metrics are a read, and Prometheus sends one bearer token per scrape job — and it is open
  otherwise (the servers then listen on loopback only).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from agenttracer import privacy
from agenttracer.server.auth import auth_dependency
from agenttracer.server.logs import REQUEST_ID
from agenttracer.server.metrics import HttpMetrics
from agenttracer.server.settings import Settings
from agenttracer.store.interface import Store

access_log = logging.getLogger("agenttracer.access")

MAX_REQUEST_ID_LEN = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_LEN}}}")
_QUIET_ROUTES = frozenset({"/health", "/metrics"})
UNMATCHED = "unmatched"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def request_id(presented: bytes | None) -> str:
    """The client's id when it is safe to echo and log, else a new one (32 hex digits)."""
    if presented is not None and len(presented) <= MAX_REQUEST_ID_LEN:
        try:
            text = presented.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if _REQUEST_ID.fullmatch(text):
            kept, reason = privacy.scrub_name(text)
            if reason is None and kept == text:
                return text
    return uuid.uuid4().hex


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/runs/{run_id}``), or ``unmatched``.

    Recent FastAPI versions leave the router's own route in the scope for a router included with a
    prefix, so its template lacks the prefix: then the prefix is the part of the path before the
    route's own pattern matches. Our include prefixes are literals (``/v1``), so no client-chosen
    value reaches a label this way.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return UNMATCHED
    pattern = getattr(route, "path_regex", None)
    path = scope.get("path", "")
    if pattern is None or pattern.match(path):
        return template
    cut = path.find("/", 1)
    while cut > 0:
        if pattern.match(path[cut:]):
            return path[:cut] + template
        cut = path.find("/", cut + 1)
    return template


class ObserveMiddleware:
    """Plain ASGI (no per-request task or body buffering): request id, metrics, the request's log line."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(_header(scope, b"x-request-id"))
        token = REQUEST_ID.set(rid)
        status = [500]  # what the client gets if the app raises before answering
        encoded = rid.encode("ascii")
        # The handler's ``request.state`` writes into this dict (a batch's counts for the log line).
        state = scope.setdefault("state", {})

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", encoded)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            method = scope.get("method", "GET")
            if self.metrics is not None:
                self.metrics.request(route, method, status[0], seconds)
            access_log.log(
                logging.DEBUG if route in _QUIET_ROUTES else logging.INFO,
                "request",
                extra={
                    "request_id": rid,
                    "method": method,
                    "route": route,
                    "status": status[0],
                    "duration_ms": round(seconds * 1000.0, 2),
                    "counts": state.get("counts") if isinstance(state, dict) else None,
                },
            )
            REQUEST_ID.reset(token)


def install(app: FastAPI, settings: Settings, store: Store, metrics: HttpMetrics | None) -> None:
    """Wrap ``app`` in ``ObserveMiddleware`` and, with ``metrics``, serve ``GET /metrics``."""
    app.state.metrics = metrics
    app.add_middleware(ObserveMiddleware, metrics=metrics)
    if metrics is None:
        return

    guard = (
        _token_guard(settings.metrics_token)
        if settings.metrics_token
        else auth_dependency(settings, store, "read")
    )

    # Not in the OpenAPI document: it is Prometheus's text format, not part of the JSON API.
    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(guard)])
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _token_guard(token: str) -> Callable[[Request], None]:
    expected = token.encode()

    def check(request: Request) -> None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
            raise HTTPException(
                status_code=401,
                detail={
                    "error": "unauthorized",
                    "field": "authorization",
                    "rule": "GET /metrics needs 'Authorization: Bearer <AGENTTRACER_METRICS_TOKEN>'",
                    "message": "missing or wrong metrics token",
                },
                headers={"WWW-Authenticate": 'Bearer realm="agenttracer-metrics"'},
            )

    return check


def count_db_error(app: Any, exc: BaseException) -> None:
    """Count a database error on ``app``'s metrics, if it keeps any."""
    metrics = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.db_error(exc)
