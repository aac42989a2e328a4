"""Which projects a Query API request reads: the one rule every endpoint applies.

A read key bound to projects reads those; an admin key, and any request while keys are off, reads
every project. The ``project`` parameter can only narrow that set: a project outside the key's set
is refused with 403, worded the same whether it exists or not, so the answer tells nothing about
other projects. Without a ``project`` parameter an endpoint answers over all the projects the
caller reads (``/v1/stats`` of a key bound to two projects sums both).

The set is resolved once per request, in the dependency, and travels inside ``RunFilters`` (and so
into every condition, rollup read and sealed cursor).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError

from agenttracer.model import MAX_PROJECT_LEN, PROJECT_RULE, is_valid_project
from agenttracer.server.auth import principal_of
from agenttracer.server.query.gate import Job, ReadGate

OUTSIDE_RULE = "must be one of the projects this key may read (GET /v1/projects lists them)"

ProjectParam = Annotated[
    str | None,
    Query(max_length=MAX_PROJECT_LEN, description="Only this project (one of those the key may read)."),
]


async def read_projects(request: Request, project: ProjectParam = None) -> tuple[str, ...]:
    """The projects this request reads, sorted (a FastAPI dependency). Listing every project is a read job
    of its own on the app's read gate (gate.py), like any other database work of a request."""
    if project is not None and not is_valid_project(project):
        raise RequestValidationError([{"loc": ("query", "project"), "msg": PROJECT_RULE, "type": "value_error"}])
    bound = principal_of(request).projects
    if bound is None:
        if project is not None:
            return (project,)
        read_gate: ReadGate = request.app.state.gate
        return await read_gate.run(request, _every_project)
    if project is not None:
        if project not in bound:
            raise HTTPException(
                403,
                detail={"error": "forbidden_project", "field": "project", "rule": OUTSIDE_RULE,
                        "message": f"project: {OUTSIDE_RULE}"},
            )
        return (project,)
    return tuple(sorted(bound))


def _every_project(job: Job[tuple[str, ...]]) -> tuple[str, ...]:
    with job.reader() as reader:
        return reader.project_slugs()
