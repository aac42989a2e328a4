"""The fast path for the common, well-formed step / run_start / run_end event — without pydantic.

Why it exists: validating an event through the pydantic models (``server/wire/ingest.py``) cost
about as much server CPU as storing it, and nearly every event the SDK sends has the same plain
shape. This module checks that shape by hand, with the same rules as the models, and builds exactly
what ``convert_event`` would build from the model. It never rejects anything and never writes an
error message: whenever an event is not plainly valid (a wrong type, a bound crossed, a timestamp
not in the SDK's ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` form, an alias spelled in capitals, a failure
event, a refused identity ...) it answers ``None`` and the caller takes the model path, so rejected
events get the models' field/rule errors unchanged. ``tests/server/test_ingest_fastpath.py`` feeds a
corpus of good and bad events through both paths and asserts identical outcomes.

The privacy policy runs here exactly as on the model path (the same ``events`` helpers).
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from typing import Any

from agenttracer import privacy
from agenttracer.model import (
    EARLIEST_TIME,
    MAX_ATTEMPT,
    MAX_CODE_LEN,
    MAX_ENVIRONMENT_LEN,
    MAX_ERROR_CLASS_LEN,
    MAX_ID_LEN,
    MAX_LATENCY_MS,
    MAX_SEQ,
    MAX_VERSION_LEN,
    STEP_TYPE_ALIASES,
    RunStatus,
    StepStatus,
    StepType,
    has_bad_chars,
    is_valid_failure_code,
    latest_time,
)
from agenttracer.server.ingest.records import RUN_END, RUN_START, STEP, run_record, step_record
from agenttracer.server.ingest.scrub import removal
from agenttracer.server.wire import EVENT_FIELDS, MAX_RAW_TEXT_LEN
from agenttracer.store.run_state import Incoming

__all__ = ["fast_convert"]

# The SDK's spelling of a UTC timestamp (and the one Python's isoformat gives). Anything else — other
# offsets, lower-case 't'/'z', a space, week dates — takes the model path. ASCII digits only: ``\d``
# would admit other scripts' digits.
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|\+00:00)")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Exact spellings only; normalize_step_type's case/space/hyphen folding is left to the model path.
_STEP_TYPES: dict[str, str] = {t.value: t.value for t in StepType} | {k: t.value for k, t in STEP_TYPE_ALIASES.items()}
_STEP_STATUS = {s.value: s.value for s in StepStatus}
# What a run may end as: every RunStatus but the one a run has while it is still going.
_RUN_END_STATUS = frozenset(s.value for s in RunStatus if s is not RunStatus.RUNNING)
_STEP_FIELDS = EVENT_FIELDS[STEP]
_RUN_START_FIELDS = EVENT_FIELDS[RUN_START]
_RUN_END_FIELDS = EVENT_FIELDS[RUN_END]


def parse_utc_py310(value: str) -> datetime:
    """``datetime.fromisoformat`` of a ``_TIMESTAMP`` match, for Python 3.10, whose fromisoformat knows
    neither ``Z`` nor fractions of 1, 2, 4 or 5 digits (without this, every SDK timestamp would send
    its batch down the slower model path there)."""
    body = value[:-1] if value[-1] == "Z" else value[:-6]
    seconds, _, fraction = body.partition(".")
    return datetime.fromisoformat(f"{seconds}.{fraction:0<6}+00:00")


_parse_utc = datetime.fromisoformat if sys.version_info >= (3, 11) else parse_utc_py310


def _timestamp(value: Any, latest: datetime) -> datetime | None:
    """The UTC time of an SDK-spelled timestamp inside the timestamp rule (model.py), else None."""
    if type(value) is not str or _TIMESTAMP.fullmatch(value) is None:
        return None
    try:
        # Always UTC here (the pattern admits only Z / +00:00), so no conversion is needed.
        when = _parse_utc(value)
    except ValueError:
        return None
    return when if EARLIEST_TIME <= when <= latest else None


def _run_id(value: Any) -> str | None:
    if type(value) is not str or len(value) != 36 or _UUID.fullmatch(value) is None:
        return None
    return value.lower()


def _text(value: Any, max_len: int) -> bool:
    return type(value) is str and 0 < len(value) <= max_len and not has_bad_chars(value)


def _seq(value: Any) -> bool:
    return type(value) is int and 1 <= value <= MAX_SEQ


def _unknown_fields(raw: dict[str, Any], known: frozenset[str], removed: list[dict[str, str]]) -> None:
    for pos, key in enumerate(raw, 1):
        if key not in known:
            removed.append(removal(privacy.reportable_key(key, pos), "unknown_field"))


def _result(index: int, kind: str, run_id: str, seq: int | None, removed: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "index": index,
        "status": "pending",
        "type": kind,
        "run_id": run_id,
        "seq": seq,
        "errors": [],
        "removed": removed,
    }


def fast_convert(index: int, raw: Any, now: datetime) -> tuple[dict[str, Any], Incoming] | None:
    """``convert_event``'s answer for a plainly valid step/run_start/run_end, else None (take the model path).

    ``now`` is the server's clock for the batch: timestamps later than the rule allows take the model path.
    """
    if type(raw) is not dict:
        return None
    kind = raw.get("type")
    if kind == STEP:
        return _step(index, raw, latest_time(now))
    if kind in (RUN_START, RUN_END):
        return _run_event(index, raw, kind, latest_time(now))
    return None


def _step(index: int, raw: dict[str, Any], latest: datetime) -> tuple[dict[str, Any], Incoming] | None:
    get = raw.get
    run_id = _run_id(get("run_id"))
    seq: Any = get("seq")
    raw_type, raw_status = get("step_type"), get("status")
    step_type = _STEP_TYPES.get(raw_type) if type(raw_type) is str else None
    status = _STEP_STATUS.get(raw_status) if type(raw_status) is str else None
    name = get("name")
    latency = get("latency_ms")
    if (
        run_id is None
        or not _seq(seq)
        or step_type is None
        or status is None
        or type(name) is not str
        or not _text(name, MAX_RAW_TEXT_LEN)
        or type(latency) is not float
        or not 0 <= latency <= MAX_LATENCY_MS
    ):
        return None
    started_text: Any = get("started_at")
    ended_text: Any = get("ended_at")
    started = _timestamp(started_text, latest)
    ended = _timestamp(ended_text, latest)
    if started is None or ended is None or ended < started:
        return None
    attempt = get("attempt", 1)
    retry_of = get("retry_of_seq")
    parent = get("parent_seq")
    error_class = get("error_class")
    failure_code = get("failure_code")
    if (
        type(attempt) is not int
        or not 1 <= attempt <= MAX_ATTEMPT
        or (retry_of is not None and not (_seq(retry_of) and retry_of < seq))
        or (parent is not None and not (_seq(parent) and parent < seq))
        or (error_class is not None and not _text(error_class, MAX_ERROR_CLASS_LEN))
        or (
            failure_code is not None
            and not (
                type(failure_code) is str
                and 0 < len(failure_code) <= MAX_CODE_LEN
                and is_valid_failure_code(failure_code)
            )
        )
    ):
        return None

    removed: list[dict[str, str]] = []
    if len(raw) > len(_STEP_FIELDS) or not _STEP_FIELDS.issuperset(raw):
        _unknown_fields(raw, _STEP_FIELDS, removed)
    # The texts matched _TIMESTAMP (the writer derives SQLite's stored text from them, see Incoming).
    item = step_record(index, run_id, seq, step_type, name, status, started, ended, latency, attempt, retry_of, parent,
                       error_class, failure_code, get("metadata"), removed, started_text, ended_text)
    return _result(index, STEP, run_id, seq, removed), item


def _identity_ok(value: Any, max_len: int) -> bool:
    """Valid for the model and kept verbatim by the policy (a refusal takes the model path for its errors)."""
    if not _text(value, max_len):
        return False
    _, reason = privacy.scrub_name(value)
    return reason is None


def _run_event(
    index: int, raw: dict[str, Any], kind: str, latest: datetime
) -> tuple[dict[str, Any], Incoming] | None:
    get = raw.get
    run_id = _run_id(get("run_id"))
    when = _timestamp(get("started_at" if kind == RUN_START else "ended_at"), latest)
    status = get("status")
    if run_id is None or when is None:
        return None
    if kind == RUN_END and (type(status) is not str or status not in _RUN_END_STATUS):
        return None
    agent_id, version, environment = get("agent_id"), get("agent_version"), get("environment")
    if not (
        _identity_ok(agent_id, MAX_ID_LEN)
        and _identity_ok(version, MAX_VERSION_LEN)
        and _identity_ok(environment, MAX_ENVIRONMENT_LEN)
    ):
        return None

    known = _RUN_START_FIELDS if kind == RUN_START else _RUN_END_FIELDS
    removed: list[dict[str, str]] = []
    if len(raw) > len(known) or not known.issuperset(raw):
        _unknown_fields(raw, known, removed)
    item = run_record(index, kind, run_id, when, agent_id, version, environment, get("metadata"), status, removed)
    return _result(index, kind, run_id, None, removed), item
