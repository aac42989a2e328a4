"""The execution model shared by the SDK and the server: vocabularies, limits and the wire event shape.

Standard library only: the agent side imports this module, so it must stay light.

A *run* is one execution of an agent. It holds ordered *steps* (seq 1, 2, 3… assigned by the SDK at
step start) and at most one *failure*. Retries are new steps that point at the attempt they retry.

Wire format (what the SDK sends to ``POST /v1/ingest``)::

    {"events": [EVENT, ...]}

with each EVENT a JSON object whose ``type`` is one of:

``run_start``  run_id, agent_id, agent_version, environment, started_at, metadata?
``step``       run_id, seq, step_type, name, started_at, ended_at, latency_ms, status,
               attempt?, retry_of_seq?, parent_seq?, error_class?, failure_code?, metadata?
``failure``    run_id, failure_type, failure_code, step_seq?, message?, recorded_at?
``run_end``    run_id, agent_id, agent_version, environment, ended_at, status, metadata?

Timestamps are ISO 8601 strings in UTC (``2026-11-25T09:00:00.123456Z``). Every field's accepted
range is stated below under "Input rules" (docs/api-sequences.md lists them). ``latency_ms`` comes from a
monotonic clock in the SDK. ``run_end`` repeats the run's identity so that a run whose ``run_start``
was lost or arrives late is still complete.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from enum import Enum


class StepType(str, Enum):
    """What kind of action a step is."""

    PLAN = "plan"
    RETRIEVAL = "retrieval"
    TOOL = "tool"
    LLM = "llm"
    RESPOND = "respond"
    OTHER = "other"


class RunStatus(str, Enum):
    """Where a run stands.

    ``partial``: the agent ended fine (no recorded failure, no escaping exception, no failed root
    span) but at least one error was never recovered by a later attempt. The one rule for every path
    is ``agenttracer.verdict`` (docs/failure-handling.md); a caller may also set ``partial`` explicitly.
    """

    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    PARTIAL = "partial"


class StepStatus(str, Enum):
    OK = "ok"
    ERROR = "error"


class FailureType(str, Enum):
    """The layer a failure belongs to."""

    TOOL = "tool"
    MODEL = "model"
    RETRIEVAL = "retrieval"
    ORCHESTRATION = "orchestration"


class EventType(str, Enum):
    RUN_START = "run_start"
    STEP = "step"
    FAILURE = "failure"
    RUN_END = "run_end"


# Spellings users reach for, mapped onto the constrained vocabulary.
STEP_TYPE_ALIASES: dict[str, StepType] = {
    "planning": StepType.PLAN,
    "planner": StepType.PLAN,
    "retrieve": StepType.RETRIEVAL,
    "retriever": StepType.RETRIEVAL,
    "search": StepType.RETRIEVAL,
    "rag": StepType.RETRIEVAL,
    "tool_call": StepType.TOOL,
    "tool_use": StepType.TOOL,
    "function": StepType.TOOL,
    "function_call": StepType.TOOL,
    "model": StepType.LLM,
    "model_call": StepType.LLM,
    "llm_call": StepType.LLM,
    "generate": StepType.LLM,
    "generation": StepType.LLM,
    "response": StepType.RESPOND,
    "reply": StepType.RESPOND,
    "answer": StepType.RESPOND,
}

# The documented failure codes. Custom codes are allowed when they match CUSTOM_CODE_PATTERN.
# Which code an exception gets is decided by ``agenttracer.failure_codes``.
FAILURE_CODES: dict[str, str] = {
    "timeout": "The action did not finish within its deadline.",
    "rate_limited": "The provider refused the call because of a rate or quota limit.",
    "schema_invalid": "A tool or model returned data that does not match the expected schema.",
    "http_error": "A remote call answered with an HTTP error status that no more specific code covers.",
    "bad_request": "The remote end refused the request as malformed or not allowed (HTTP 400, 409, 413, 422).",
    "server_error": "The remote end failed on its side or is overloaded (HTTP 5xx).",
    "connection_error": "A remote endpoint could not be reached.",
    "empty_result": "Retrieval or a tool returned nothing usable.",
    "invalid_output": "The model's output could not be used (unparseable, wrong tool, bad arguments).",
    "content_filtered": "A safety filter blocked the model's input or output.",
    "context_overflow": "The model's context window was exceeded.",
    "max_iterations": "The agent loop hit its budget of iterations, turns, steps or recursion.",
    "usage_limit": "The agent hit a configured budget of tokens, requests or cost.",
    "guardrail_tripped": "A guardrail of the agent stopped its input, output or a tool call.",
    "cancelled": "The run or action was cancelled.",
    "auth_error": "Credentials were missing, invalid or not allowed.",
    "not_found": "A requested resource does not exist.",
    "unhandled_exception": "An exception escaped the agent's code without a recorded failure.",
    "abandoned": "No event arrived for AGENTTRACER_RUN_TIMEOUT_S and no end: the server closed the run.",
}
# The code the server's abandonment sweep records (type orchestration); an agent does not send it.
ABANDONED_CODE = "abandoned"
# Codes only the server gives a run's failure: a failure event carrying one is refused (a run the
# sweep closed forgets the sweep's failure when it is reopened, and could not tell an agent's from it).
SERVER_FAILURE_CODES = frozenset({ABANDONED_CODE})
SERVER_FAILURE_CODE_RULE = "is set by the server when a run falls silent (abandoned); an agent records another code"
CUSTOM_CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# Limits shared by the SDK, the wire models and the schema.
MAX_ID_LEN = 128  # run_id, agent_id
MAX_VERSION_LEN = 64
MAX_ENVIRONMENT_LEN = 64
MAX_NAME_LEN = 128  # step names, tool names
MAX_CODE_LEN = 64  # failure codes (custom pattern allows 64)
MAX_ERROR_CLASS_LEN = 128
MAX_MESSAGE_LEN = 256  # failure message after scrubbing
MAX_META_KEYS = 32
MAX_META_KEY_LEN = 64
MAX_META_STRING_LEN = 128
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 5 * 1024 * 1024  # after decompression
MAX_SEQ = 1_000_000
MAX_ATTEMPT = 1_000

# --- Projects ----------------------------------------------------------------------------------------
# Every run belongs to one project, named by a slug; a run that names none is in DEFAULT_PROJECT.
MAX_PROJECT_LEN = 63
PROJECT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PROJECT_RULE = "a project slug: 1-63 lowercase letters, digits or '-', not starting with '-'"
DEFAULT_PROJECT = "default"
# Where a client without a key names the project (keys decide it when they are on).
PROJECT_HEADER = "X-AgentTracer-Project"
PROJECT_ENV = "AGENTTRACER_PROJECT"
PROJECT_RESOURCE_ATTRIBUTE = "agenttracer.project"


def is_valid_project(value: object) -> bool:
    """True for a well-formed project slug (PROJECT_PATTERN)."""
    return isinstance(value, str) and PROJECT_PATTERN.fullmatch(value) is not None


# --- Input rules -------------------------------------------------------------------------------------
#
# The accepted range of every field, stated once. Both APIs enforce these rules from here (ingest per
# event, the Query API per parameter); docs/api-sequences.md ("Input rules") lists them. Each rule has
# a name: per-event rejections and 422 answers carry it as ``code`` beside the field and the rule text.

# Timestamps: not before the Unix epoch, and at most MAX_FUTURE past the server's clock. The upper bound
# allows clock skew between agents and server; nothing later is a real event. The same window bounds
# the Query API's since/until, so no stored or requested time is outside it.
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EARLIEST_TIME = UNIX_EPOCH
MAX_FUTURE = timedelta(hours=24)
# Latencies in milliseconds: finite, >= 0 and at most 30 days. Far below what any sum over the rollups
# could overflow (a float, or PostgreSQL's double precision/numeric).
MAX_LATENCY_MS = 30 * 24 * 3600 * 1000.0
# Metadata numbers: integers and floats within +-(2**53 - 1) (every such integer is exact as a double
# and in the dashboard's JavaScript), finite.
MAX_META_NUMBER = 2**53 - 1

RULE_TIME_RANGE = "time_range"
RULE_LATENCY_RANGE = "latency_range"
RULE_SEQ_RANGE = "seq_range"
RULE_ATTEMPT_RANGE = "attempt_range"
RULE_CONTROL_CHARACTERS = "control_characters"
RULE_TEXT_LENGTH = "text_length"
RULE_SERVER_FAILURE_CODE = "server_failure_code"

# C0 controls, DEL and lone surrogates: PostgreSQL refuses NUL, SQLite's driver refuses surrogates,
# and none belongs in a name, an id or a filter.
_BAD_CHARS_RE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
CONTROL_CHARACTERS_RULE = "must not contain control characters, NUL or lone surrogates"


def has_bad_chars(text: str) -> bool:
    """True when ``text`` holds control characters, DEL or lone surrogates (never accepted in text fields)."""
    if text.isascii():
        # In ASCII the bad characters are exactly the non-printable ones (C0 controls and DEL); two
        # C-level checks are several times cheaper than the regular expression on this hot path.
        return not text.isprintable()
    return _BAD_CHARS_RE.search(text) is not None


# Column lengths of the stored text fields, whichever path writes them (the SDK's events, OTLP spans):
# a value longer than its column, or holding a character of the rule above, is refused with
# RULE_TEXT_LENGTH / RULE_CONTROL_CHARACTERS, never truncated and never left for the database to refuse.
TEXT_FIELD_LIMITS: dict[str, int] = {
    "agent_id": MAX_ID_LEN,
    "agent_version": MAX_VERSION_LEN,
    "environment": MAX_ENVIRONMENT_LEN,
    "name": MAX_NAME_LEN,
    "error_class": MAX_ERROR_CLASS_LEN,
}


def text_rule_broken(value: str, field: str) -> str | None:
    """The rule (RULE_TEXT_LENGTH or RULE_CONTROL_CHARACTERS) that ``value`` breaks as the stored text
    field ``field`` (a key of TEXT_FIELD_LIMITS), or None when it may be stored."""
    if not 0 < len(value) <= TEXT_FIELD_LIMITS[field]:
        return RULE_TEXT_LENGTH
    return RULE_CONTROL_CHARACTERS if has_bad_chars(value) else None


def text_rule_text(field: str) -> str:
    """The text rule of a stored field, in words (what a per-event or per-span refusal says)."""
    return f"must be 1 to {TEXT_FIELD_LIMITS[field]} characters; {CONTROL_CHARACTERS_RULE}"


# The one spelling of a timestamp on the wire: ISO 8601 text, starting with its date. Numbers and numeric
# strings ("0", "1765100000.5") are not timestamps here, whatever a lenient parser makes of them.
_ISO_TIMESTAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
TIMESTAMP_FORMAT_RULE = "must be an ISO 8601 string with a timezone, e.g. 2026-11-25T09:00:00Z"


def looks_like_iso_timestamp(value: object) -> bool:
    """True for text that starts with an ISO 8601 date; the parser then checks the rest."""
    return isinstance(value, str) and _ISO_TIMESTAMP_RE.match(value) is not None


def latest_time(now: datetime) -> datetime:
    """The latest timestamp accepted when the server's clock reads ``now``."""
    return now + MAX_FUTURE


def time_rule_text() -> str:
    return (
        f"must be a time from {EARLIEST_TIME:%Y-%m-%dT%H:%M:%SZ} to "
        f"{int(MAX_FUTURE.total_seconds() // 3600)} h after the server's clock"
    )


def time_in_range(value: datetime, now: datetime) -> bool:
    """The timestamp rule, for an aware ``value`` (any offset)."""
    return EARLIEST_TIME <= value <= latest_time(now)


def to_utc_in_range(value: datetime, now: datetime) -> datetime | None:
    """``value`` in UTC (naive read as UTC) when it obeys the timestamp rule, else None.

    Total: times whose UTC form is not representable (year 1 with a positive offset, year 9999 with
    a negative one) are simply out of range.
    """
    try:
        utc = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None
    return utc if time_in_range(utc, now) else None




def normalize_step_type(value: str) -> StepType:
    """Map a user-supplied step type (or a known alias) onto the vocabulary.

    Raises ValueError naming the accepted values when the type is unknown.
    """
    key = value.strip().lower().replace("-", "_").replace(" ", "_") if isinstance(value, str) else ""
    try:
        return StepType(key)
    except ValueError:
        pass
    alias = STEP_TYPE_ALIASES.get(key)
    if alias is not None:
        return alias
    allowed = ", ".join(t.value for t in StepType)
    raise ValueError(f"unknown step type {value!r}: use one of {allowed} (or an alias such as 'retrieve')")


def is_valid_failure_code(code: str) -> bool:
    """True for documented codes and for custom codes matching CUSTOM_CODE_PATTERN."""
    return isinstance(code, str) and (code in FAILURE_CODES or CUSTOM_CODE_PATTERN.fullmatch(code) is not None)
