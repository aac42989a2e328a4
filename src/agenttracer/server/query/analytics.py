"""The Query API's analytics endpoints: ``/v1/stats`` and ``/v1/compare`` (the store computes them:
``Reader.run_stats`` and ``Reader.compare_versions``; definitions in ``store/results.py``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from agenttracer.model import MAX_ENVIRONMENT_LEN, MAX_ID_LEN, MAX_VERSION_LEN
from agenttracer.server.query.coalesce import SingleFlight
from agenttracer.server.query.common import ERROR_RESPONSES, Filters, Scope, gate, render
from agenttracer.server.query.gate import Job
from agenttracer.server.query.params import NoControlChars, SinceParam, UntilParam, invalid, time_window
from agenttracer.server.wire import CompareResponse, StatsResponse
from agenttracer.store.results import RunStats

router = APIRouter()


@router.get(
    "/stats",
    response_model=StatsResponse,
    summary="Outcomes, run latency, failures, retries, per-step latency attribution and volume over time.",
    responses=ERROR_RESPONSES,
)
async def get_stats(filters: Filters, request: Request) -> Response:
    # Identical concurrent requests share one computation (coalesce.py: the rules and the staleness bound);
    # the read session is opened only by the job that computes, once it starts: a job waiting for another's
    # computation holds a worker but no connection.
    flights: SingleFlight[RunStats] = request.app.state.stats_flights

    def read(job: Job[Response]) -> Response:
        def compute() -> RunStats:
            with job.reader() as reader:
                return reader.run_stats(filters)

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
        with job.reader() as reader:
            result = reader.compare_versions(agent_id, base, candidate, environment, since, until, scope)
        return render(CompareResponse, dataclasses.asdict(result))

    return await gate(request).run(request, read)
