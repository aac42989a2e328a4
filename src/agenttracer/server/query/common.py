"""What every Query API endpoint module shares: the read gate of the request, rendering on the worker
thread, the common parameters and the documented error answers.

An endpoint is ``async`` and hands its database work to the app's read gate (``gate.py``: workers,
bounded queue, deadline) as one job that renders the answer, so neither the query nor the
serialisation runs on the event loop::

    @router.get("/stats", response_model=StatsResponse, summary="…")
    async def get_stats(filters: Filters, request: Request) -> Response:
        def read(job: Job[Response]) -> Response:
            with job.reader() as reader:
                return render(StatsResponse, ...)
        return await gate(request).run(request, read)

``run_filters`` (``params.py``) parses and validates the common filter parameters (422 naming the
parameter and rule). Operation ids are the handler function names, so keep those short and descriptive.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from agenttracer.server.query.gate import ReadGate
from agenttracer.server.query.params import run_filters
from agenttracer.server.query.scope import read_projects
from agenttracer.server.wire import ErrorOut
from agenttracer.store.filters import RunFilters

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "A parameter is invalid; each entry names it and the rule."},
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
