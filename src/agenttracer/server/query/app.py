"""The read-only Query API (:8001): runs, run detail, agents, projects, stats and compare, on a read-only store.

``create_app`` mounts the endpoint modules (``runs.py``, ``analytics.py``; shared pieces in
``common.py``) under ``/v1`` behind the read scope's key check, and answers ``/health`` itself. Every
database read of a request runs through the app's read gate (``gate.py``); the store is reached only
through the store interface (``agenttracer.store``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.routing import APIRoute

from agenttracer.server import errors
from agenttracer.server.auth import Principal, auth_dependency
from agenttracer.server.errors import database_unavailable, error_response, health_response, retry_later
from agenttracer.server.failsafe import Failsafe
from agenttracer.server.metrics import QueryMetrics
from agenttracer.server.observe import count_db_error, install
from agenttracer.server.query import analytics, runs
from agenttracer.server.query.coalesce import SingleFlight
from agenttracer.server.query.gate import Admission, ClientGone, DeadlinePassed, Limits, Overloaded, ReadGate, limits
from agenttracer.server.settings import Settings
from agenttracer.server.wire import ErrorOut, HealthOut
from agenttracer.store import open_store
from agenttracer.store.interface import Store
from agenttracer.store.results import RunStats

# /health's own budget: its ping answers within it or the answer is 503 (it never waits behind reads).
HEALTH_TIMEOUT_MS = 800
# A read that succeeded this recently shows the database reachable: /health then answers without a ping, so
# under load it costs the database (and the process) nothing.
HEALTH_FRESH_S = 1.0

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "A key is needed, or the key presented is unknown or revoked."},
    403: {"model": ErrorOut, "description": "The key presented is not a read key, or `project` names a project "
          "the key may not read."},
    503: {"model": ErrorOut, "description": "The database cannot be read right now, the request took longer "
          "than the server's time limit (query_timeout_ms), or the server already has as many reads as it "
          "takes (code overloaded); retry after Retry-After."},
}


def _validation_error(_request: Request, exc: Exception) -> Response:
    # FastAPI's default body echoes the rejected input; ours names the parameter and rule only.
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", "invalid"), "type": err.get("type", "value_error")}
        for err in exc.errors()
    ]
    first = detail[0] if detail else {"loc": ["request"], "msg": "invalid"}
    field = str(first["loc"][-1]) if first["loc"] else "request"
    message = "; ".join(f"{e['loc'][-1] if e['loc'] else 'request'}: {e['msg']}" for e in detail) or "invalid request"
    return error_response(422, "invalid_parameters", message, field=field, rule=str(first["msg"]), detail=detail)


def _too_slow(request: Request, exc: BaseException) -> Response:
    limit = request.app.state.settings.query_timeout_ms
    return database_unavailable("query", exc, f"the query took longer than this server's limit of {limit} ms "
                                "(query_timeout_ms); retry later or narrow the time window or filters")


def _database_unavailable(request: Request, exc: Exception) -> Response:
    count_db_error(request.app, exc)
    store: Store = request.app.state.store
    if store.is_timeout(exc):
        return _too_slow(request, exc)
    return database_unavailable("query", exc, f"the database is unavailable ({type(exc).__name__}); retry shortly")


def _stopped(request: Request, exc: Exception) -> Response:
    # A client that has gone reads no answer; the deadline's answer is the one a timed-out query gets.
    return _too_slow(request, exc)


def _overloaded(request: Request, _exc: Exception) -> Response:
    return overloaded(request.app.state.gate.limits)


def overloaded(sizes: Limits) -> Response:
    """The 503 of a full queue (gate.py), the same whether the gate or its Admission middleware refuses."""
    return retry_later(
        503, "overloaded",
        f"this server already has {sizes.workers} reads running and {sizes.queue} waiting; retry after Retry-After",
        field="request", rule="at most query_workers reads at once and query_queue waiting",
    )


def cursor_key(settings: Settings) -> bytes:
    """The key that seals this process's cursors: the ``cursor_secret`` setting, else a random one.

    A random key is per process: cursors then do not survive a restart and are refused by another
    query process (a 422 asking to start over). Set ``AGENTTRACER_CURSOR_SECRET`` to the same value on
    every query process behind a load balancer.
    """
    if settings.cursor_secret:
        return settings.cursor_secret.encode()
    return secrets.token_bytes(32)


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings, *, store: Store | None = None) -> FastAPI:
    """The Query API application on a read-only store for ``settings.database_url``.

    Reads go through a :class:`ReadGate` sized by ``gate.limits(settings)``; ``/health`` and the
    ``/metrics`` key check use a small store of their own, so they never queue behind reads. A ``store``
    passed in (tests) serves both, and is left open.
    """
    sizes = limits(settings)
    owned: list[Store] = []
    if store is None:
        store = open_store(settings.database_url, readonly=True, statement_timeout_ms=settings.query_timeout_ms,
                           connections=sizes.workers)
        side = open_store(settings.database_url, readonly=True, statement_timeout_ms=HEALTH_TIMEOUT_MS,
                          connections=2)
        owned = [store, side]
    else:
        side = store
    read_gate = ReadGate(store, sizes)
    side_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="query-health")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        read_gate.close()
        side_threads.shutdown(wait=False, cancel_futures=True)
        for owned_store in owned:
            owned_store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="AgentTracer Query API",
        version="1.0",
        description="Read-only access to agent runs, steps, failures and analytics. Carries no content.",
        generate_unique_id_function=_operation_id,
    )
    app.state.store = store
    app.state.gate = read_gate
    app.state.stats_flights = SingleFlight[RunStats]()
    app.state.settings = settings
    errors.install(app)
    app.state.cursor_key = cursor_key(settings)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error in store.unavailable_errors:
        app.add_exception_handler(error, _database_unavailable)
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_exception_handler(DeadlinePassed, _stopped)
    app.add_exception_handler(ClientGone, _stopped)
    # Innermost: inside the metrics middleware (which counts its 500s) and CORS (so even a 500 carries
    # the headers the dashboard needs to read it).
    app.add_middleware(Failsafe)
    app.add_middleware(Admission, gate=read_gate, refuse=lambda: overloaded(sizes))
    install(app, settings, side, QueryMetrics() if settings.metrics_enabled else None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET"],
        allow_headers=["Authorization", "X-API-Key", "X-Request-ID"],
        expose_headers=["X-Request-ID"],
    )
    check_key = auth_dependency(settings, store, "read", reader=read_gate.reader)

    async def read_auth(request: Request) -> Principal:
        # The key check is a job of its own: between it and the read the request holds nothing.
        principal: Principal = await read_gate.run(request, lambda _job: check_key(request))
        return principal

    for endpoints in (runs.router, analytics.router):
        app.include_router(endpoints, prefix="/v1", dependencies=[Depends(read_auth)], responses=AUTH_RESPONSES)
    backend = store.backend

    @app.get(
        "/health",
        response_model=HealthOut,
        summary="Liveness and database reachability (503 when the database cannot be read).",
        responses={503: {"model": HealthOut, "description": "The database cannot be read."}},
    )
    async def health() -> Any:
        if time.monotonic() - read_gate.last_read_ok < HEALTH_FRESH_S:
            return health_response("query", backend)
        try:
            ping_done = asyncio.get_running_loop().run_in_executor(side_threads, side.ping)
            await asyncio.wait_for(ping_done, HEALTH_TIMEOUT_MS / 1000)
        except Exception as exc:  # any failure to read means "unreachable"; the class name is enough
            count_db_error(app, exc)
            return health_response("query", backend, "unreachable", type(exc).__name__)
        return health_response("query", backend)

    return app
