"""Wire models of the read-only Query API: run summaries and pages, run detail, agents, health."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from agenttracer.model import (
    FailureType,
    RunStatus,
    StepStatus,
    StepType,
)
from agenttracer.server.wire.ingest import ApiError, HealthResponse

#
# Response models of the read-only Query API (:8001). Field names follow the database columns so the
# reader maps rows onto them directly; they carry no content, only the execution shape.

# Lists of labels come from OTLP attributes that are lists (finish reasons); SDK metadata is scalars.
MetaValue = str | int | float | bool | list[str] | None


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True, use_enum_values=True)


class RunSummary(_Out):
    """One run as listed: identity, outcome, timing and the counters kept by the writer."""

    run_id: str = Field(description="UUID assigned by the SDK.")
    project: str = Field(description="The project the run belongs to ('default' when none was named).")
    # Identity is null only while a run is known from steps whose run_start has not arrived yet.
    agent_id: str | None
    agent_version: str | None
    environment: str | None
    status: RunStatus
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: float | None = Field(description="Run wall time in milliseconds, once ended.")
    step_count: int
    error_step_count: int = Field(description="Steps that ended with status 'error'.")
    retry_count: int = Field(description="Steps that are retries of an earlier attempt.")
    failure_type: FailureType | None
    failure_code: str | None
    meta: dict[str, MetaValue] = Field(description="Safe metadata that passed the privacy policy.")
    meta_removed: int = Field(description="How many metadata keys the privacy policy removed.")
    source: Literal["sdk", "otlp"] = Field(
        description="The write path that created the run: 'sdk' (POST /v1/ingest: the SDK and the native "
                    "integrations) or 'otlp' (POST /v1/traces); the other path's events are refused for it.")
    abandoned: bool = Field(
        description="True while the run's failure is the abandoned-run sweep's verdict (no event for "
                    "AGENTTRACER_RUN_TIMEOUT_S seconds): a run end or root span that arrives later replaces it.")


class StepOut(_Out):
    """One step of a run; a retry is its own step pointing at the attempt it retries."""

    seq: int = Field(description="Order of the step within its run, 1-based, assigned at step start.")
    step_type: StepType
    name: str
    status: StepStatus
    started_at: datetime
    ended_at: datetime
    latency_ms: float = Field(description="Measured with a monotonic clock in the SDK.")
    attempt: int = Field(description="1 for a first attempt, 2, 3… for retries.")
    retry_of_seq: int | None = Field(description="seq of the attempt this step retries.")
    parent_seq: int | None = Field(description="seq of the enclosing step, for nested steps.")
    error_class: str | None = Field(description="Exception class name of an error step (never its message).")
    failure_code: str | None
    meta: dict[str, MetaValue]
    meta_removed: int


class FailureOut(_Out):
    """The semantic reason a run failed, linked to the step that caused it when known."""

    failure_type: FailureType
    failure_code: str
    step_seq: int | None = Field(description="seq of the causing step, when recorded.")
    message: str | None = Field(description="Short message that passed the privacy policy.")
    recorded_at: datetime


class RunDetail(BaseModel):
    """A run with its failure (if any) and one page of its steps in seq order.

    ``run`` carries the whole run's totals (step_count, error_step_count, retry_count, duration_ms)
    on every page; ``steps`` holds only the steps with seq above the request's ``steps_after``.
    """

    run: RunSummary
    steps: list[StepOut] = Field(description="One page of steps, seq ascending.")
    next_steps_after: int | None = Field(
        description="Pass as steps_after to get the next page of steps; null when this page is the last."
    )
    failure: FailureOut | None


class RunPage(BaseModel):
    """A page of runs, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[RunSummary]
    next_cursor: str | None = Field(description="Opaque; null when this is the last page.")


class AgentVersionOut(BaseModel):
    agent_version: str
    run_count: int
    last_seen: datetime | None = Field(description="Start of the newest run of this version.")


class AgentEnvironmentOut(BaseModel):
    environment: str
    run_count: int
    last_seen: datetime | None


class AgentOut(BaseModel):
    """An agent seen in the data, with its versions and environments."""

    agent_id: str
    run_count: int
    last_seen: datetime | None = Field(description="Start of the newest run of this agent.")
    versions: list[AgentVersionOut] = Field(description="Newest-seen first.")
    environments: list[AgentEnvironmentOut] = Field(description="Newest-seen first.")


class AgentList(BaseModel):
    """A page of agents, newest-seen first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[AgentOut]
    next_cursor: str | None = Field(description="Opaque; null when this is the last page.")


class ProjectOut(BaseModel):
    """A project: its slug, its own retention (null: the deployment's) and when it was created."""

    slug: str
    retention_days: int | None = Field(description="Days runs are kept; null: AGENTTRACER_RETENTION_DAYS applies.")
    created_at: datetime


class ProjectList(BaseModel):
    items: list[ProjectOut]


class HealthOut(HealthResponse):
    """Liveness and database reachability of the Query API (503 when the database cannot be read)."""


class ErrorOut(ApiError):
    """An error answer of the Query API, in both APIs' one shape: ``detail`` is the message (404, 401, 403,
    409, 503) or a list of {loc, msg, type} naming each bad parameter and its rule (422)."""

    matches: int | None = Field(
        default=None, description="On 409 ambiguous_prefix: how many runs' ids begin with the prefix (at most 1000)."
    )

