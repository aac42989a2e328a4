"""Wire models of the write-only Ingest API: the events of a batch, per-event results, errors, health."""

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
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agenttracer.model import (
    CONTROL_CHARACTERS_RULE,
    MAX_ATTEMPT,
    MAX_BATCH_EVENTS,
    MAX_CODE_LEN,
    MAX_ENVIRONMENT_LEN,
    MAX_ERROR_CLASS_LEN,
    MAX_ID_LEN,
    MAX_LATENCY_MS,
    MAX_PROJECT_LEN,
    MAX_SEQ,
    MAX_VERSION_LEN,
    PROJECT_PATTERN,
    RULE_ATTEMPT_RANGE,
    RULE_CONTROL_CHARACTERS,
    RULE_LATENCY_RANGE,
    RULE_SEQ_RANGE,
    RULE_SERVER_FAILURE_CODE,
    RULE_TEXT_LENGTH,
    RULE_TIME_RANGE,
    SERVER_FAILURE_CODE_RULE,
    SERVER_FAILURE_CODES,
    TIMESTAMP_FORMAT_RULE,
    FailureType,
    StepStatus,
    StepType,
    has_bad_chars,
    is_valid_failure_code,
    looks_like_iso_timestamp,
    normalize_step_type,
    time_in_range,
    time_rule_text,
)

# Step names and failure messages are bounded by the privacy policy (which replaces or truncates
# what is too long); this generous cap only keeps a single event from being absurdly large.
MAX_RAW_TEXT_LEN = 4096

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _canonical_uuid(value: str) -> str:
    if not _UUID_RE.match(value):
        raise PydanticCustomError("uuid_format", "must be a UUID in canonical 8-4-4-4-12 hexadecimal form")
    return value.lower()


def _no_control_chars(value: str) -> str:
    if has_bad_chars(value):
        raise PydanticCustomError(RULE_CONTROL_CHARACTERS, CONTROL_CHARACTERS_RULE)
    return value


def _iso_string_only(value: Any) -> Any:
    # Numbers and numeric strings would be read as Unix times; the wire contract is ISO 8601 text.
    if not looks_like_iso_timestamp(value):
        raise PydanticCustomError("timestamp_format", TIMESTAMP_FORMAT_RULE)
    return value


def _to_utc_in_range(value: datetime, info: ValidationInfo) -> datetime:
    """UTC, within the timestamp rule; ``now`` comes from the validation context (the batch's clock)."""
    context = info.context if isinstance(info.context, dict) else {}
    now = context.get("now") or datetime.now(timezone.utc)
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or not time_in_range(utc, now):
        raise PydanticCustomError(RULE_TIME_RANGE, time_rule_text())
    return utc


def _step_type(value: Any) -> StepType:
    if not isinstance(value, str):
        raise PydanticCustomError("type", "must be a string")
    try:
        return normalize_step_type(value)
    except ValueError:
        # normalize_step_type's own message quotes the input; ours must never echo a rejected value.
        allowed = ", ".join(t.value for t in StepType)
        raise PydanticCustomError("vocabulary", f"must be one of {allowed} (or an alias such as 'retrieve')") from None


def _failure_code(value: str) -> str:
    if not is_valid_failure_code(value):
        raise PydanticCustomError(
            "failure_code_format", "must be a documented failure code or match ^[a-z][a-z0-9_]{0,63}$"
        )
    return value


def _agent_failure_code(value: str) -> str:
    if value in SERVER_FAILURE_CODES:
        raise PydanticCustomError(RULE_SERVER_FAILURE_CODE, SERVER_FAILURE_CODE_RULE)
    return value


def _bounded(max_len: int, min_len: int = 1) -> Any:
    return Field(min_length=min_len, max_length=max_len, strict=True)


RunId = Annotated[str, Field(strict=True, max_length=36), AfterValidator(_canonical_uuid)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_string_only), AfterValidator(_to_utc_in_range)]
AgentId = Annotated[str, _bounded(MAX_ID_LEN), AfterValidator(_no_control_chars)]
Version = Annotated[str, _bounded(MAX_VERSION_LEN), AfterValidator(_no_control_chars)]
Environment = Annotated[str, _bounded(MAX_ENVIRONMENT_LEN), AfterValidator(_no_control_chars)]
StepName = Annotated[str, _bounded(MAX_RAW_TEXT_LEN), AfterValidator(_no_control_chars)]
ErrorClass = Annotated[str, _bounded(MAX_ERROR_CLASS_LEN), AfterValidator(_no_control_chars)]
FailureCode = Annotated[str, _bounded(MAX_CODE_LEN), AfterValidator(_failure_code)]
AgentFailureCode = Annotated[FailureCode, AfterValidator(_agent_failure_code)]  # a run's failure, as sent
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
    latency_ms: float = Field(strict=True, ge=0, le=MAX_LATENCY_MS, allow_inf_nan=False)
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
            raise PydanticCustomError("order", "ended_at: must not be before started_at")
        if self.retry_of_seq is not None and self.retry_of_seq >= self.seq:
            raise PydanticCustomError(
                "order", "retry_of_seq: must be smaller than seq (a retry starts after what it retries)"
            )
        if self.parent_seq is not None and self.parent_seq >= self.seq:
            raise PydanticCustomError(
                "order", "parent_seq: must be smaller than seq (a parent starts before its children)"
            )
        return self


class FailureEvent(_Event):
    """The semantic reason a run failed (at most one per run)."""

    type: Literal["failure"]
    failure_type: FailureType
    failure_code: AgentFailureCode
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
    """Why something was refused: the field (a dotted path), the rule it broke and the rule's name
    (``code``, see docs/api-sequences.md "Input rules"). Never the value."""

    field: str
    rule: str
    code: str = Field(default="invalid", description="The rule's name, e.g. time_range or control_characters.")


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
    project: str | None = Field(
        default=None,
        pattern=PROJECT_PATTERN.pattern,
        max_length=MAX_PROJECT_LEN,
        description="the batch's project: with keys on it must be the ingest key's (or be left out); without "
        "keys it chooses the project (else the X-AgentTracer-Project header, else 'default')",
    )


class IngestResponse(BaseModel):
    """The answer to a batch, sent after it is committed."""

    accepted: int
    duplicates: int
    rejected: int
    removed: int = Field(description="metadata keys or fields removed by the privacy policy, over all events")
    results: list[EventResult]


class ApiError(BaseModel):
    """The body of every error answer of both APIs (``server/errors.py``): a code, which field broke which
    rule, a sentence, and ``detail`` for FastAPI-style clients. Values are never echoed."""

    error: str = Field(description="machine-readable code, e.g. payload_too_large, invalid_parameters, not_found")
    field: str | None = Field(default=None, description="the input at fault, when the error is about one")
    rule: str | None = Field(default=None, description="the rule that input broke")
    message: str = Field(description="a sentence for people")
    detail: str | list[dict[str, object]] | None = Field(
        default=None, description="the message again, or on a 422 a list of {loc, msg, type} per bad parameter"
    )


class HealthResponse(BaseModel):
    """``GET /health`` of every server: the same shape from ingest and query, so one probe fits both."""

    status: Literal["ok", "unavailable"]
    service: str
    database: Literal["ok", "unreachable", "not_writable"] = Field(
        description="'not_writable' (ingest only): the database answers but refuses writes, or the last "
        "write failed within the last minute (e.g. a full disk)."
    )
    backend: str = Field(description="'sqlite' or 'postgresql'.")
    detail: str | None = Field(default=None, description="On 503: the kind of error, never a URL or credential.")


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
        out.append(
            FieldError(
                field=field or "event",
                rule=_rule_text(err["type"], err.get("ctx") or {}, rule),
                code=rule_code(field, err["type"]),
            )
        )
    return out


# The rule names of pydantic's own checks, by the field they apply to (range checks) or their kind.
_RANGE_CODES = {
    "latency_ms": RULE_LATENCY_RANGE,
    "seq": RULE_SEQ_RANGE,
    "retry_of_seq": RULE_SEQ_RANGE,
    "parent_seq": RULE_SEQ_RANGE,
    "step_seq": RULE_SEQ_RANGE,
    "attempt": RULE_ATTEMPT_RANGE,
}
_RANGE_KINDS = frozenset({"greater_than_equal", "greater_than", "less_than_equal", "less_than", "finite_number"})
_KIND_CODES = {
    "missing": "required",
    "string_too_long": RULE_TEXT_LENGTH,
    "string_too_short": RULE_TEXT_LENGTH,
    "too_long": RULE_TEXT_LENGTH,
    "literal_error": "vocabulary",
    "enum": "vocabulary",
    "union_tag_invalid": "event_type",
    "union_tag_not_found": "event_type",
    "timezone_aware": "timestamp_format",
    "datetime_parsing": "timestamp_format",
    "datetime_from_date_parsing": "timestamp_format",
    "datetime_object_invalid": "timestamp_format",
}


def rule_code(field: str, kind: str) -> str:
    """The rule name for a pydantic error of ``kind`` on ``field`` (our own checks name theirs)."""
    if kind in _RANGE_KINDS and field in _RANGE_CODES:
        return _RANGE_CODES[field]
    if kind in _KIND_CODES:
        return _KIND_CODES[kind]
    if kind in _OWN_CODES:
        return kind
    if kind.endswith("_type") or kind in ("int_from_float", "int_parsing"):
        return "type"
    return "invalid"


# The names our own validators raise (PydanticCustomError's type is the rule name).
_OWN_CODES = frozenset(
    {
        "type",
        "order",
        "vocabulary",
        "uuid_format",
        "timestamp_format",
        "failure_code_format",
        RULE_SERVER_FAILURE_CODE,
        RULE_TIME_RANGE,
        RULE_CONTROL_CHARACTERS,
    }
)


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
