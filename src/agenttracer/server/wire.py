"""The pydantic models that travel over HTTP: ingest requests/results, query responses, analytics.

One module so that both APIs and the dashboard's generated TypeScript types share one vocabulary.
Sections are owned by different parts of the server; keep each self-contained.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from agenttracer.model import (
    MAX_ATTEMPT,
    MAX_BATCH_EVENTS,
    MAX_CODE_LEN,
    MAX_ENVIRONMENT_LEN,
    MAX_ERROR_CLASS_LEN,
    MAX_ID_LEN,
    MAX_SEQ,
    MAX_VERSION_LEN,
    FailureType,
    RunStatus,
    StepStatus,
    StepType,
    is_valid_failure_code,
    normalize_step_type,
)

# --- Ingest API ---

# Step names and failure messages are bounded by the privacy policy (which replaces or truncates
# what is too long); this generous cap only keeps a single event from being absurdly large.
MAX_RAW_TEXT_LEN = 4096

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# C0 controls, DEL and lone surrogates: PostgreSQL refuses NUL, SQLite's driver refuses surrogates.
_BAD_CHARS_RE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def has_bad_chars(text: str) -> bool:
    """True when ``text`` holds control characters or lone surrogates (never storable in a name)."""
    return _BAD_CHARS_RE.search(text) is not None


def _canonical_uuid(value: str) -> str:
    if not _UUID_RE.match(value):
        raise ValueError("must be a UUID in canonical 8-4-4-4-12 hexadecimal form")
    return value.lower()


def _no_control_chars(value: str) -> str:
    if has_bad_chars(value):
        raise ValueError("must not contain control characters, NUL or lone surrogates")
    return value


def _iso_string_only(value: Any) -> Any:
    # Numbers would be read as Unix times; the wire contract is ISO 8601 text, so say so.
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string with a timezone, e.g. 2026-11-25T09:00:00Z")
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("must be a representable UTC time (year 1..9999)") from None


def _step_type(value: Any) -> StepType:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    try:
        return normalize_step_type(value)
    except ValueError:
        # normalize_step_type's own message quotes the input; ours must never echo a rejected value.
        allowed = ", ".join(t.value for t in StepType)
        raise ValueError(f"must be one of {allowed} (or an alias such as 'retrieve')") from None


def _failure_code(value: str) -> str:
    if not is_valid_failure_code(value):
        raise ValueError("must be a documented failure code or match ^[a-z][a-z0-9_]{0,63}$")
    return value


def _bounded(max_len: int, min_len: int = 1) -> Any:
    return Field(min_length=min_len, max_length=max_len, strict=True)


RunId = Annotated[str, Field(strict=True, max_length=36), AfterValidator(_canonical_uuid)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_string_only), AfterValidator(_to_utc)]
AgentId = Annotated[str, _bounded(MAX_ID_LEN), AfterValidator(_no_control_chars)]
Version = Annotated[str, _bounded(MAX_VERSION_LEN), AfterValidator(_no_control_chars)]
Environment = Annotated[str, _bounded(MAX_ENVIRONMENT_LEN), AfterValidator(_no_control_chars)]
StepName = Annotated[str, _bounded(MAX_RAW_TEXT_LEN), AfterValidator(_no_control_chars)]
ErrorClass = Annotated[str, _bounded(MAX_ERROR_CLASS_LEN), AfterValidator(_no_control_chars)]
FailureCode = Annotated[str, _bounded(MAX_CODE_LEN), AfterValidator(_failure_code)]
Seq = Annotated[int, Field(strict=True, ge=1, le=MAX_SEQ)]
Attempt = Annotated[int, Field(strict=True, ge=1, le=MAX_ATTEMPT)]
StepTypeField = Annotated[StepType, BeforeValidator(_step_type)]
# A failure message is free text: the privacy policy decides what of it may be kept.
Message = Annotated[str, Field(strict=True, max_length=MAX_RAW_TEXT_LEN)]


class _Event(BaseModel):
    # Unknown fields are dropped (and reported back as removed), never stored.
    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: RunId


class RunStartEvent(_Event):
    """A run began."""

    type: Literal["run_start"]
    agent_id: AgentId
    agent_version: Version
    environment: Environment
    started_at: Timestamp
    metadata: Any = None


class StepEvent(_Event):
    """One finished step (a retry is a new step with ``attempt`` > 1 and ``retry_of_seq``)."""

    type: Literal["step"]
    seq: Seq
    step_type: StepTypeField
    name: StepName
    started_at: Timestamp
    ended_at: Timestamp
    latency_ms: float = Field(strict=True, ge=0, allow_inf_nan=False)
    status: StepStatus
    attempt: Attempt = 1
    retry_of_seq: Seq | None = None
    parent_seq: Seq | None = None
    error_class: ErrorClass | None = None
    failure_code: FailureCode | None = None
    metadata: Any = None

    @model_validator(mode="after")
    def _order(self) -> StepEvent:
        if self.ended_at < self.started_at:
            raise ValueError("ended_at: must not be before started_at")
        if self.retry_of_seq is not None and self.retry_of_seq >= self.seq:
            raise ValueError("retry_of_seq: must be smaller than seq (a retry starts after what it retries)")
        if self.parent_seq is not None and self.parent_seq >= self.seq:
            raise ValueError("parent_seq: must be smaller than seq (a parent starts before its children)")
        return self


class FailureEvent(_Event):
    """The semantic reason a run failed (at most one per run)."""

    type: Literal["failure"]
    failure_type: FailureType
    failure_code: FailureCode
    step_seq: Seq | None = None
    message: Message | None = None
    recorded_at: Timestamp | None = None


class RunEndEvent(_Event):
    """A run finished; repeats the run's identity so a run whose start was lost is still complete."""

    type: Literal["run_end"]
    agent_id: AgentId
    agent_version: Version
    environment: Environment
    ended_at: Timestamp
    # A run_end closes the run, so "running" is not an ending status.
    status: Literal["success", "failure", "partial"]
    metadata: Any = None


Event = Annotated[RunStartEvent | StepEvent | FailureEvent | RunEndEvent, Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)
EVENT_FIELDS: dict[str, frozenset[str]] = {
    model.model_fields["type"].annotation.__args__[0]: frozenset(model.model_fields)  # type: ignore[union-attr]
    for model in (RunStartEvent, StepEvent, FailureEvent, RunEndEvent)
}
EVENT_TYPES = tuple(EVENT_FIELDS)


class FieldError(BaseModel):
    """Why something was refused: the field (a dotted path) and the rule it broke. Never the value."""

    field: str
    rule: str


class RemovedField(BaseModel):
    """A metadata key or field the privacy policy removed before storage, with its reason code."""

    key: str
    reason: str


class EventResult(BaseModel):
    """What happened to one event of the batch, by its position ``index``."""

    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    type: str | None = None
    run_id: str | None = None
    seq: int | None = None
    errors: list[FieldError] = []
    removed: list[RemovedField] = []


class IngestRequest(BaseModel):
    """The body of ``POST /v1/ingest`` (documentation only: events are validated one by one)."""

    events: list[Event] = Field(max_length=MAX_BATCH_EVENTS)


class IngestResponse(BaseModel):
    """The answer to a batch, sent after it is committed."""

    accepted: int
    duplicates: int
    rejected: int
    removed: int = Field(description="metadata keys or fields removed by the privacy policy, over all events")
    results: list[EventResult]


class ApiError(BaseModel):
    """The body of every error answer: which field broke which rule (values are never echoed)."""

    error: str = Field(description="machine-readable code, e.g. payload_too_large")
    field: str
    rule: str
    message: str


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    service: str
    database: Literal["ok", "unreachable"]


def format_validation_error(exc: ValidationError) -> list[FieldError]:
    """Turn pydantic's errors into (field, rule) pairs without the offending input."""
    out: list[FieldError] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in err["loc"]]
        # For the tagged union pydantic puts the tag first (e.g. ``step.seq``): drop it.
        if loc and loc[0] in EVENT_FIELDS:
            loc = loc[1:]
        rule = err["msg"]
        if rule.startswith("Value error, "):
            rule = rule[len("Value error, ") :]
        field = ".".join(loc)
        # Model-level validators name their field inside the message ("ended_at: must ...").
        if not field and ": " in rule:
            field, rule = rule.split(": ", 1)
        if err["type"] == "union_tag_invalid" or (err["type"] == "union_tag_not_found"):
            field, rule = "type", "must be one of " + ", ".join(EVENT_TYPES)
        out.append(FieldError(field=field or "event", rule=_rule_text(err["type"], err.get("ctx") or {}, rule)))
    return out


_RULES = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be a boolean",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "timezone_aware": "must include a timezone (e.g. Z or +00:00)",
    "finite_number": "must be a finite number",
}


_BOUND_RULES = {
    "greater_than_equal": ("ge", ">="),
    "greater_than": ("gt", ">"),
    "less_than_equal": ("le", "<="),
    "less_than": ("lt", "<"),
    "string_too_long": ("max_length", "at most {} characters long"),
    "string_too_short": ("min_length", "at least {} characters long"),
    "too_long": ("max_length", "at most {} items long"),
}


def _rule_text(kind: str, ctx: dict[str, Any], default: str) -> str:
    if kind in _BOUND_RULES:
        key, op = _BOUND_RULES[kind]
        if key in ctx:
            bound = ctx[key]
            if isinstance(bound, float) and bound.is_integer():
                bound = int(bound)
            return f"must be {op.format(bound)}" if "{}" in op else f"must be {op} {bound}"
    return _RULES.get(kind, default)


# --- Query API ---
#
# Response models of the read-only Query API (:8001). Field names follow the database columns so the
# reader maps rows onto them directly; they carry no content, only the execution shape.

MetaValue = str | int | float | bool | None


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True, use_enum_values=True)


class RunSummary(_Out):
    """One run as listed: identity, outcome, timing and the counters kept by the writer."""

    run_id: str = Field(description="UUID assigned by the SDK.")
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
    """A run with its steps in seq order and its failure (if any)."""

    run: RunSummary
    steps: list[StepOut]
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
    items: list[AgentOut]


class HealthOut(HealthResponse):
    """Liveness and database reachability of the Query API (503 when the database cannot be read)."""

    backend: str = Field(description="'sqlite' or 'postgresql'.")
    detail: str | None = Field(default=None, description="On 503: the kind of error, never a URL or credential.")


class ErrorOut(BaseModel):
    """A client error. ``detail`` is a sentence (404), a list of {loc, msg, type} naming each bad
    parameter and its rule (422), or {error, message} from the key check (401/403)."""

    detail: str | list[dict[str, object]] | dict[str, object]


# --- Analytics ---
#
# Responses of GET /v1/stats and GET /v1/compare. Built from the dataclasses of store/analytics.py and
# store/analytics_compare.py (same field names). Latencies are milliseconds; rates are fractions in
# [0, 1] and null when there is nothing to divide by; percentiles use PostgreSQL's percentile_cont
# definition (linear interpolation between the two nearest ranks) on every database.


class LatencyPercentiles(BaseModel):
    """Continuous percentiles (linear interpolation, as PostgreSQL's percentile_cont); null without data."""

    p50: float | None = Field(description="Median, in milliseconds.")
    p95: float | None = Field(description="95th percentile, in milliseconds.")
    p99: float | None = Field(description="99th percentile, in milliseconds.")


class StatusCounts(BaseModel):
    """Runs per status; ``running`` runs have no outcome yet."""

    running: int
    success: int
    failure: int
    partial: int


class FailureCountOut(BaseModel):
    """Runs that failed with this failure type (in failures_by_type) or code (in failures_by_code)."""

    failure_type: FailureType | None = Field(description="Set in failures_by_type, null in failures_by_code.")
    failure_code: str | None = Field(description="Set in failures_by_code, null in failures_by_type.")
    count: int = Field(description="Runs whose recorded failure has this type or code.")


class FailingStepOut(BaseModel):
    """A step (by type and name) that ends in error most often."""

    step_type: StepType
    name: str
    error_count: int = Field(description="Steps of this name that ended with status 'error' (retried or not).")
    count: int = Field(description="All steps of this name, retries included.")
    error_rate: float = Field(description="error_count / count.")


class StepGroupOut(BaseModel):
    """Counts, errors and latency attribution of one step type, or one (type, name) pair."""

    step_type: StepType
    name: str | None = Field(description="The step name; null in the per-type breakdown.")
    count: int = Field(description="Steps in the group, retries and nested steps included.")
    error_count: int = Field(description="Steps that ended with status 'error'.")
    error_rate: float = Field(description="error_count / count.")
    retry_count: int = Field(description="Steps in the group that are retries (attempt > 1).")
    latency_ms: LatencyPercentiles = Field(description="Step latency percentiles.")
    total_latency_ms: float = Field(description="Summed latency of the group's steps.")
    share_of_run_time: float | None = Field(
        description="Latency attribution: summed latency of the group's steps in finished runs / summed duration "
        "of those runs. A nested step is also inside its parent and parallel steps overlap, so shares may add "
        "up to more than 1."
    )


class RetryStatsOut(BaseModel):
    """How much retrying happens and what it costs. A retry is a new step with attempt > 1."""

    retry_steps: int = Field(description="Steps that are retries of an earlier attempt.")
    total_steps: int = Field(description="All steps of the runs in scope.")
    retry_rate: float | None = Field(description="retry_steps / total_steps.")
    runs_with_retries: int = Field(description="Runs with at least one retry step.")
    total_runs: int
    run_retry_rate: float | None = Field(description="runs_with_retries / total_runs.")
    time_in_retries_ms: float = Field(description="Summed latency of the retry steps.")
    share_of_step_time: float | None = Field(description="time_in_retries_ms / summed latency of all steps.")


class TimeBucketOut(BaseModel):
    """Run volume and outcome of the runs that started within one bucket."""

    start: datetime = Field(description="Bucket start (UTC), inclusive; the bucket lasts one hour or one day.")
    runs: int = Field(description="Runs started in the bucket, running ones included.")
    finished_runs: int
    success_runs: int
    failure_runs: int
    success_rate: float | None = Field(description="success_runs / finished_runs; null for an empty bucket.")
    run_latency_ms: LatencyPercentiles = Field(description="Duration percentiles of the bucket's finished runs.")


class TimelineOut(BaseModel):
    """Runs over time. Buckets are hourly when the range spans two days or less, daily otherwise."""

    bucket: str = Field(description="'hour' or 'day'.")
    start: datetime | None = Field(description="Range start: 'since', or the first run's start.")
    end: datetime | None = Field(description="Range end: 'until', or now.")
    points: list[TimeBucketOut] = Field(
        description="Oldest first; empty buckets in the range are included (up to 1000 buckets)."
    )


class StatsResponse(BaseModel):
    """Aggregates over the runs matching the filters (the same filters as /v1/runs).

    Rates and run latency are over finished runs (status success, failure or partial).
    """

    total_runs: int = Field(description="Runs matching the filters, running ones included.")
    finished_runs: int = Field(description="Runs that have ended (status other than running).")
    status_counts: StatusCounts
    success_rate: float | None = Field(description="success / finished_runs.")
    failure_rate: float | None = Field(description="failure / finished_runs.")
    partial_rate: float | None = Field(description="partial / finished_runs.")
    run_latency_ms: LatencyPercentiles = Field(description="Duration percentiles of finished runs.")
    failures_by_type: list[FailureCountOut] = Field(description="Failed runs per failure type, most first.")
    failures_by_code: list[FailureCountOut] = Field(description="Failed runs per failure code, most first.")
    top_failing_steps: list[FailingStepOut] = Field(description="Up to 10 step names with the most error steps.")
    retries: RetryStatsOut
    step_types: list[StepGroupOut] = Field(description="Per step type, most total latency first.")
    step_names: list[StepGroupOut] = Field(description="Per (step type, name), most total latency first (top 100).")
    step_names_truncated: bool = Field(description="True when more than 100 step names exist.")
    step_sample_runs: int = Field(
        description="Runs whose steps the per-step numbers (step_types, step_names, top_failing_steps, "
        "retries.time_in_retries_ms) were computed from."
    )
    steps_sampled: bool = Field(
        description="True when more runs matched than are read for per-step numbers: those then cover the "
        "newest step_sample_runs matching runs (all other numbers always cover every matching run)."
    )
    timeline: TimelineOut
    generated_at: datetime


class SignificanceOut(BaseModel):
    """A two-sided test of base against candidate.

    verdict 'insufficient_data' means the sample is too small to tell: fewer than min_sample
    observations in a group, or (for rates) fewer than min_expected expected events or non-events.
    """

    test: str = Field(description="'two_proportion_z' (rates) or 'mann_whitney_u' (latencies, steps per run).")
    verdict: str = Field(description="'significant' (p < alpha), 'not_significant' or 'insufficient_data'.")
    p_value: float | None = Field(description="Two-sided p-value; null when the sample is too small.")
    statistic: float | None = Field(
        description="z score, positive when the candidate is higher (Mann–Whitney: tie- and continuity-corrected)."
    )
    alpha: float


class DeltaOut(BaseModel):
    """One metric for both versions; delta = candidate − base, relative = delta / base."""

    base: float | None
    candidate: float | None
    delta: float | None
    relative: float | None = Field(description="delta / base; null when base is 0 or missing.")
    test: SignificanceOut | None


class PercentileDeltaOut(BaseModel):
    """Latency percentiles of both versions, their differences, and a Mann–Whitney U test."""

    base: LatencyPercentiles
    candidate: LatencyPercentiles
    delta: LatencyPercentiles = Field(description="candidate − base, per percentile.")
    test: SignificanceOut


class VersionSideOut(BaseModel):
    """One version's finished runs in the comparison window."""

    version: str
    runs: int = Field(description="Finished runs compared (the sample every rate and test uses).")
    finished_runs_in_window: int = Field(description="Finished runs of this version in the window.")
    sampled: bool = Field(
        description="True when more runs finished in the window than are compared: the comparison then reads "
        "the newest 2,000 finished runs of each version."
    )
    running_runs: int = Field(description="Runs still running, left out of the comparison.")
    status_counts: StatusCounts = Field(
        description="The compared runs per status; 'running' repeats running_runs (never compared)."
    )
    success_rate: float | None
    failure_rate: float | None
    run_latency_ms: LatencyPercentiles
    steps: int = Field(description="All steps of the finished runs, retries and nested steps included.")
    steps_per_run: float | None = Field(description="steps / runs.")
    retry_steps: int
    retry_rate: float | None = Field(description="retry_steps / steps.")
    runs_with_retries: int
    run_retry_rate: float | None = Field(description="runs_with_retries / runs.")


class FailureMixRowOut(BaseModel):
    """Share of finished runs failing with this (type, code), per version."""

    failure_type: FailureType
    failure_code: str
    base_count: int
    candidate_count: int
    rate: DeltaOut = Field(description="Failed runs with this type and code / finished runs.")


class StepTypeComparisonOut(BaseModel):
    """One step type in both versions: latency and error rate."""

    step_type: StepType
    base_count: int
    candidate_count: int
    latency_ms: PercentileDeltaOut
    error_rate: DeltaOut = Field(description="Error steps / steps of this type (retries included).")


class ShapeRowOut(BaseModel):
    """A run shape and how often each version's runs have it."""

    shape: list[str] = Field(
        description="Step types of the run's top-level first attempts in seq order (retries and nested steps "
        "left out); empty for runs without such steps; cut after 30 types with a final '…' entry."
    )
    base_count: int
    candidate_count: int
    share: DeltaOut = Field(description="Runs with this shape / runs compared.")


class CompareResponse(BaseModel):
    """Two versions of one agent side by side, from the execution shape alone (never content)."""

    agent_id: str
    environment: str | None
    since: datetime | None
    until: datetime | None
    alpha: float = Field(description="Significance level of every test.")
    min_sample: int = Field(description="Observations each group needs before a test says anything.")
    min_expected: float = Field(description="Expected events and non-events each group needs for a rate test.")
    base: VersionSideOut
    candidate: VersionSideOut
    success_rate: DeltaOut
    failure_rate: DeltaOut
    run_latency_ms: PercentileDeltaOut
    steps_per_run: DeltaOut = Field(description="Mean steps per run; tested with Mann–Whitney U on step counts.")
    retry_rate: DeltaOut = Field(description="Retry steps / steps.")
    run_retry_rate: DeltaOut = Field(description="Runs with a retry / runs.")
    failure_mix: list[FailureMixRowOut]
    step_types: list[StepTypeComparisonOut]
    shapes: list[ShapeRowOut] = Field(description="The 10 most common shapes of each version, most common first.")
    significant: list[str] = Field(description="Names of the metrics whose difference is significant.")
