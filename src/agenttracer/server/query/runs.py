"""The Query API's run endpoints: the runs list, one run's detail, the agents and the projects.

Lists are paged by sealed cursors (``store/cursors.py``, ``store/agent_pages.py``); run detail pages its
steps. A run of another project answers exactly as a run that does not exist.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from agenttracer.model import MAX_SEQ
from agenttracer.server.auth import principal_of
from agenttracer.server.errors import error_response
from agenttracer.server.query.common import ERROR_RESPONSES, Filters, Scope, gate, render
from agenttracer.server.query.gate import Job
from agenttracer.server.query.params import invalid
from agenttracer.server.query.run_ids import MAX_PREFIX_MATCHES, RUN_ID_PREFIX_RULE, ambiguous, run_id_prefix
from agenttracer.server.wire import AgentList, ErrorOut, ProjectList, RunDetail, RunPage
from agenttracer.store import agent_pages, cursors
from agenttracer.store.cursor_seal import MAX_TOKEN_LEN

# The cursor parameter of every paginated list: a sealed token handed out as next_cursor, passed back as is.
PageCursor = Annotated[
    str | None, Query(max_length=MAX_TOKEN_LEN, description="next_cursor from the previous page, unchanged.")
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Steps per page of run detail: a page of typical steps is ~150 KB at the default, and the metadata
# caps of model.py bound the worst case, so no run, however long, makes one response unbounded.
DEFAULT_STEP_PAGE_SIZE = 500
MAX_STEP_PAGE_SIZE = 1000
# Agents per page: a typical agent with a few versions and environments is ~0.5 KB.
DEFAULT_AGENT_PAGE_SIZE = 100
MAX_AGENT_PAGE_SIZE = 500

router = APIRouter()


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
    cursor: PageCursor = None,
) -> Response:
    after = None
    if cursor is not None:
        try:
            after = cursors.decode_cursor(cursor, filters, request.app.state.cursor_key)
        except cursors.CursorError as exc:
            raise invalid("cursor", str(exc), code="cursor") from None
    key = request.app.state.cursor_key

    def read(job: Job[Response]) -> Response:
        with job.reader() as reader:
            items, next_cursor = reader.list_runs(filters, limit=limit, cursor=after)
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
        with job.reader() as reader:
            if prefix is not None:
                found = reader.runs_with_prefix(prefix, MAX_PREFIX_MATCHES + 1, projects=scope)
                if len(found) > 1:
                    return ambiguous(prefix, len(found))
                canonical = found[0] if found else prefix
            detail = reader.get_run(canonical, steps_after=steps_after, steps_limit=steps_limit, projects=scope)
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
    cursor: PageCursor = None,
) -> Response:
    key = request.app.state.cursor_key
    after = None
    if cursor is not None:
        try:
            after = agent_pages.decode_cursor(cursor, scope, key)
        except cursors.CursorError as exc:
            raise invalid("cursor", str(exc), code="cursor") from None

    def read(job: Job[Response]) -> Response:
        with job.reader() as reader:
            items, next_at = agent_pages.page(reader.list_agents(scope), limit, after)
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
        with job.reader() as reader:
            items = [dataclasses.asdict(p) for p in reader.list_projects(bound)]
        return render(ProjectList, {"items": items})

    return await gate(request).run(request, read)
