"""The read-only Query API (:8001): runs, run detail, agents and health, on a read-only engine.

Routes live on the module-level ``router``; ``create_app`` mounts it under ``/v1`` behind the read
scope's key check. An endpoint is ``async`` and hands its database work to the app's read gate
(``gate.py``: workers, bounded queue, deadline) as one job that renders the answer, so neither the
query nor the serialisation runs on the event loop::

    @router.get("/stats", response_model=StatsResponse, summary="…")
    async def get_stats(filters: Filters, request: Request) -> Response:
        def read(job: Job[Response]) -> Response:
            with job.connect() as conn:
                return render(StatsResponse, ...)
        return await gate(request).run(request, read)

``run_filters`` (``params.py``) parses and validates the common filter parameters (422 naming the
parameter and rule). Operation ids are the handler function names, so keep those short and descriptive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from agenttracer.model import (
    MAX_ENVIRONMENT_LEN,
    MAX_ID_LEN,
    MAX_SEQ,
    MAX_VERSION_LEN,
)
from agenttracer.server import errors
from agenttracer.server.auth import Principal, auth_dependency, principal_of
from agenttracer.server.errors import UNAVAILABLE, database_unavailable, error_response, health_response, retry_later
from agenttracer.server.failsafe import Failsafe
from agenttracer.server.metrics import QueryMetrics
from agenttracer.server.observe import count_db_error, install
from agenttracer.server.query.coalesce import SingleFlight
from agenttracer.server.query.gate import (
    Admission,
    ClientGone,
    DeadlinePassed,
    Job,
    Limits,
    Overloaded,
    ReadGate,
    limits,
)
from agenttracer.server.query.params import NoControlChars, SinceParam, UntilParam, invalid, run_filters, time_window
from agenttracer.server.query.run_ids import MAX_PREFIX_MATCHES, RUN_ID_PREFIX_RULE, ambiguous, run_id_prefix
from agenttracer.server.query.scope import read_projects
from agenttracer.server.settings import Settings
from agenttracer.server.wire import (
    AgentList,
    CompareResponse,
    ErrorOut,
    HealthOut,
    ProjectList,
    RunDetail,
    RunPage,
    StatsResponse,
)
from agenttracer.store import agent_pages, cursors
from agenttracer.store.cursor_seal import MAX_TOKEN_LEN
from agenttracer.store.filters import RunFilters
from agenttracer.store.results import RunStats
from agenttracer.store.sql import projects as project_store
from agenttracer.store.sql.read import compare, runs, stats
from agenttracer.store.sql.schema.engine import make_engine, timed_out

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Steps per page of run detail: a page of typical steps is ~150 KB at the default, and the metadata
# caps of model.py bound the worst case, so no run, however long, makes one response unbounded.
DEFAULT_STEP_PAGE_SIZE = 500
MAX_STEP_PAGE_SIZE = 1000
# Agents per page: a typical agent with a few versions and environments is ~0.5 KB.
DEFAULT_AGENT_PAGE_SIZE = 100
MAX_AGENT_PAGE_SIZE = 500
# /health's own budget: its ping answers within it or the answer is 503 (it never waits behind reads).
HEALTH_TIMEOUT_MS = 800
# A read that succeeded this recently shows the database reachable: /health then answers without a ping, so
# under load it costs the database (and the process) nothing.
HEALTH_FRESH_S = 1.0

router = APIRouter()

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "A parameter is invalid; each entry names it and the rule."},
}


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "A key is needed, or the key presented is unknown or revoked."},
    403: {"model": ErrorOut, "description": "The key presented is not a read key, or `project` names a project "
          "the key may not read."},
    503: {"model": ErrorOut, "description": "The database cannot be read right now, the request took longer "
          "than the server's time limit (query_timeout_ms), or the server already has as many reads as it "
          "takes (code overloaded); retry after Retry-After."},
}


def gate(request: Request) -> ReadGate:
    """The app's read gate (gate.py): every database read of a request is a job run through it."""
    read_gate: ReadGate = request.app.state.gate
    return read_gate


def render(model: type[BaseModel], data: Any) -> Response:
    """``data`` validated by and serialised as ``model`` — what FastAPI does with a ``response_model``, done
    here so that it happens on the read's worker thread instead of the event loop."""
    return Response(model.model_validate(data).model_dump_json().encode(), media_type="application/json")


Filters = Annotated[RunFilters, Depends(run_filters)]
# The projects a request reads (scope.py): the key's, narrowed by the ``project`` parameter.
Scope = Annotated[tuple[str, ...], Depends(read_projects)]


@router.get(
    "/runs",
    response_model=RunPage,
    summary="List runs newest first, filtered, with cursor pagination.",
    responses=ERROR_RESPONSES,
)
async def list_runs(
    request: Request,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=MAX_TOKEN_LEN, description="next_cursor from the previous page, unchanged.")
    ] = None,
) -> Response:
    after = None
    if cursor is not None:
        try:
            after = cursors.decode_cursor(cursor, filters, request.app.state.cursor_key)
        except cursors.CursorError as exc:
            raise invalid("cursor", str(exc), code="cursor") from None
    key = request.app.state.cursor_key

    def read(job: Job[Response]) -> Response:
        with job.connect() as conn:
            items, next_cursor = runs.list_runs(conn, filters, limit=limit, cursor=after)
        return render(RunPage, {
            "items": items,
            "next_cursor": cursors.encode_cursor(next_cursor, filters, key) if next_cursor is not None else None,
        })

    return await gate(request).run(request, read)


@router.get(
    "/runs/{run_id}",
    response_model=RunDetail,
    summary="One run with its totals, its failure and a page of its steps in seq order.",
    responses={404: {"model": ErrorOut, "description": "No run has this id (or begins with this prefix) in the "
                     "projects the key may read."},
               409: {"model": ErrorOut, "description": "The prefix begins more than one run's id (code "
                     "ambiguous_prefix; `matches` says how many, up to 1000): give more of the id."},
               **ERROR_RESPONSES},
)
async def get_run(
    request: Request,
    scope: Scope,
    run_id: Annotated[str, Path(max_length=64, description=(
        "The run's UUID, or a prefix of it of at least 4 hex digits that begins exactly one run's id "
        "(with or without the dashes), as `agenttracer show` accepts."))],
    steps_after: Annotated[
        int,
        Query(ge=0, le=MAX_SEQ, description=(
            "The seq of the previous page's last step (its next_steps_after): the page holds the steps"
            " after it in the run's start order; 0 for the first page.")),
    ] = 0,
    steps_limit: Annotated[
        int, Query(ge=1, le=MAX_STEP_PAGE_SIZE, description="Steps per page.")
    ] = DEFAULT_STEP_PAGE_SIZE,
) -> Any:
    prefix = None
    try:
        canonical = str(uuid.UUID(run_id))
    except ValueError:
        prefix = run_id_prefix(run_id)
        if prefix is None:
            raise invalid("run_id", RUN_ID_PREFIX_RULE, "path") from None
        canonical = prefix
    # Ingest stores run ids in canonical form too.
    # A run of another project answers exactly as a run that does not exist.

    def read(job: Job[Response]) -> Response:
        nonlocal canonical
        with job.connect() as conn:
            if prefix is not None:
                found = runs.runs_with_prefix(conn, prefix, MAX_PREFIX_MATCHES + 1, projects=scope)
                if len(found) > 1:
                    return ambiguous(prefix, len(found))
                canonical = found[0] if found else prefix
            detail = runs.get_run(conn, canonical, steps_after=steps_after, steps_limit=steps_limit, projects=scope)
        if detail is None:
            message = f"no run's id begins with {prefix}" if prefix is not None else f"no run with run_id {canonical}"
            return error_response(404, "not_found", message, field="run_id", rule="must name a stored run")
        return render(RunDetail, detail)

    return await gate(request).run(request, read)


@router.get(
    "/agents",
    response_model=AgentList,
    summary="Agents seen in the data with their versions, environments, run counts and last seen, newest-seen "
            "first, with cursor pagination.",
    responses=ERROR_RESPONSES,
)
async def list_agents(
    request: Request,
    scope: Scope,
    limit: Annotated[int, Query(ge=1, le=MAX_AGENT_PAGE_SIZE, description="Page size.")] = DEFAULT_AGENT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=MAX_TOKEN_LEN, description="next_cursor from the previous page, unchanged.")
    ] = None,
) -> Response:
    key = request.app.state.cursor_key
    after = None
    if cursor is not None:
        try:
            after = agent_pages.decode_cursor(cursor, scope, key)
        except cursors.CursorError as exc:
            raise invalid("cursor", str(exc), code="cursor") from None

    def read(job: Job[Response]) -> Response:
        with job.connect() as conn:
            items, next_at = agent_pages.page(runs.list_agents(conn, scope), limit, after)
        next_cursor = agent_pages.encode_cursor(next_at, scope, key) if next_at is not None else None
        return render(AgentList, {"items": items, "next_cursor": next_cursor})

    return await gate(request).run(request, read)


@router.get(
    "/projects",
    response_model=ProjectList,
    summary="The projects this key may read (every project for an admin key, or while keys are off).",
)
async def list_projects(request: Request) -> Response:
    bound = principal_of(request).projects

    def read(job: Job[Response]) -> Response:
        with job.connect() as conn:
            items = [dataclasses.asdict(p) for p in project_store.list_projects(conn, bound)]
        return render(ProjectList, {"items": items})

    return await gate(request).run(request, read)


# --- Analytics (/v1/stats, /v1/compare): store/sql/read/stats.py and store/sql/read/compare.py do the work.


@router.get(
    "/stats",
    response_model=StatsResponse,
    summary="Outcomes, run latency, failures, retries, per-step latency attribution and volume over time.",
    responses=ERROR_RESPONSES,
)
async def get_stats(filters: Filters, request: Request) -> Response:
    # Identical concurrent requests share one computation (coalesce.py: the rules and the staleness bound);
    # the connection is taken only by the job that computes, once it starts: a job waiting for another's
    # computation holds a worker but no connection.
    flights: SingleFlight[RunStats] = request.app.state.stats_flights

    def read(job: Job[Response]) -> Response:
        def compute() -> RunStats:
            with job.connect() as conn:
                return stats.run_stats(conn, filters)

        return render(StatsResponse, dataclasses.asdict(flights.run(filters, compute)))

    return await gate(request).run(request, read)


@router.get(
    "/compare",
    response_model=CompareResponse,
    summary="Compare two versions of an agent: deltas with significance, failure mix, latency, run shapes.",
    responses=ERROR_RESPONSES,
)
async def compare_versions(
    request: Request,
    scope: Scope,
    agent_id: Annotated[
        str, Query(min_length=1, max_length=MAX_ID_LEN, description="The agent to compare."),
        NoControlChars,
    ],
    base: Annotated[
        str, Query(min_length=1, max_length=MAX_VERSION_LEN, description="The reference version, e.g. v1."),
        NoControlChars,
    ],
    candidate: Annotated[
        str, Query(min_length=1, max_length=MAX_VERSION_LEN, description="The version compared with base."),
        NoControlChars,
    ],
    environment: Annotated[
        str | None, Query(max_length=MAX_ENVIRONMENT_LEN, description="Only runs in this environment."), NoControlChars
    ] = None,
    since: SinceParam = None,
    until: UntilParam = None,
) -> Response:
    if candidate == base:
        raise invalid("candidate", "must differ from base")
    since, until = time_window(since, until)

    def read(job: Job[Response]) -> Response:
        with job.connect() as conn:
            result = compare.compare_versions(conn, agent_id, base, candidate, environment, since, until, scope)
        return render(CompareResponse, dataclasses.asdict(result))

    return await gate(request).run(request, read)


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
    if timed_out(exc):
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


def create_app(settings: Settings, *, engine: sa.Engine | None = None) -> FastAPI:
    """The Query API application on a read-only engine for ``settings.database_url``.

    Reads go through a :class:`ReadGate` sized by ``gate.limits(settings)``; ``/health`` and the
    ``/metrics`` key check use a small engine of their own, so they never queue behind reads. An
    ``engine`` passed in (tests) serves both.
    """
    sizes = limits(settings)
    owned: list[sa.Engine] = []
    if engine is None:
        engine = make_engine(settings.database_url, readonly=True, statement_timeout_ms=settings.query_timeout_ms,
                             **sizes.engine_options())
        side = make_engine(settings.database_url, readonly=True, statement_timeout_ms=HEALTH_TIMEOUT_MS,
                           pool_size=1, max_overflow=1, pool_timeout=HEALTH_TIMEOUT_MS / 1000)
        owned = [engine, side]
    else:
        side = engine
    read_gate = ReadGate(engine, sizes)
    side_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="query-health")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        read_gate.close()
        side_threads.shutdown(wait=False, cancel_futures=True)
        for owned_engine in owned:
            owned_engine.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="AgentTracer Query API",
        version="1.0",
        description="Read-only access to agent runs, steps, failures and analytics. Carries no content.",
        generate_unique_id_function=_operation_id,
    )
    app.state.engine = engine
    app.state.gate = read_gate
    app.state.stats_flights = SingleFlight[RunStats]()
    app.state.settings = settings
    errors.install(app)
    app.state.cursor_key = cursor_key(settings)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error in UNAVAILABLE:
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
    check_key = auth_dependency(settings, engine, "read", connect=read_gate.connect)

    async def read_auth(request: Request) -> Principal:
        # The key check is a job of its own: between it and the read the request holds nothing.
        principal: Principal = await read_gate.run(request, lambda _job: check_key(request))
        return principal

    app.include_router(router, prefix="/v1", dependencies=[Depends(read_auth)], responses=AUTH_RESPONSES)

    def ping() -> None:
        with side.connect() as conn:
            runs.ping(conn)

    @app.get(
        "/health",
        response_model=HealthOut,
        summary="Liveness and database reachability (503 when the database cannot be read).",
        responses={503: {"model": HealthOut, "description": "The database cannot be read."}},
    )
    async def health() -> Any:
        backend = engine.dialect.name
        if time.monotonic() - read_gate.last_read_ok < HEALTH_FRESH_S:
            return health_response("query", backend)
        try:
            ping_done = asyncio.get_running_loop().run_in_executor(side_threads, ping)
            await asyncio.wait_for(ping_done, HEALTH_TIMEOUT_MS / 1000)
        except Exception as exc:  # any failure to read means "unreachable"; the class name is enough
            count_db_error(app, exc)
            return health_response("query", backend, "unreachable", type(exc).__name__)
        return health_response("query", backend)

    return app
