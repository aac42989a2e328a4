"""From one raw JSON event to a storable record: strict validation, then the privacy policy.

``convert_event`` never raises for bad input: it returns the event's result entry (rejected with
field/rule errors, or pending with the list of removed keys) and, when the event is valid, the
``Incoming`` record for the writer. Values that the policy removed are never returned or logged.

Plainly valid step / run_start / run_end events are checked by hand (``fastpath``); every
other event — and every rejection — goes through the pydantic models (``convert_with_model``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agenttracer import privacy
from agenttracer.diagnostics import describe_exception
from agenttracer.server.ingest.fastpath import fast_convert
from agenttracer.server.ingest.records import RUN_END, RUN_START, failure_record, run_record, step_record
from agenttracer.server.ingest.scrub import removal
from agenttracer.server.wire import (
    EVENT_ADAPTER,
    EVENT_FIELDS,
    FailureEvent,
    RunEndEvent,
    RunStartEvent,
    StepEvent,
    format_validation_error,
)
from agenttracer.store.run_state import Incoming

log = logging.getLogger("agenttracer.ingest")

INTERNAL_ERROR_RULE = "could not be processed because of a server error (logged); the rest of the batch was stored"


def _identity_refused(event: RunStartEvent | RunEndEvent) -> list[dict[str, str]]:
    """Identity fields are kept verbatim or not at all: the policy may refuse them, never rewrite them."""
    errors = []
    for field in ("agent_id", "agent_version", "environment"):
        _, reason = privacy.scrub_name(getattr(event, field))
        if reason is not None:
            errors.append({"field": field, "rule": f"refused by the privacy policy ({reason})", "code": "privacy"})
    return errors


def convert_event(index: int, raw: Any, now: datetime) -> tuple[dict[str, Any], Incoming | None]:
    """Validate and scrub one event. Returns (its result entry, the record to store or None).

    Total: an unexpected error while converting one event rejects that event alone (rule
    ``internal_error``, logged by class name only), so the rest of its batch is still stored.
    """
    try:
        fast = fast_convert(index, raw, now)
        if fast is not None:
            return fast
        return convert_with_model(index, raw, now)
    except Exception as exc:
        log.error("ingest: converting event %d failed (%s): rejected it alone", index, describe_exception(exc))
        return internal_error_result(index, raw), None


def internal_error_result(index: int, raw: Any) -> dict[str, Any]:
    """The result of an event the server could not process (its fault, not the data's)."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    return {
        "index": index,
        "status": "rejected",
        "type": kind if isinstance(kind, str) and kind in EVENT_FIELDS else None,
        "run_id": None,
        "seq": None,
        "errors": [{"field": "event", "rule": INTERNAL_ERROR_RULE, "code": "internal_error"}],
        "removed": [],
    }


def convert_with_model(index: int, raw: Any, now: datetime) -> tuple[dict[str, Any], Incoming | None]:
    """``convert_event`` through the pydantic models: any event, with field/rule errors for bad ones."""
    result: dict[str, Any] = {
        "index": index,
        "status": "rejected",
        "type": None,
        "run_id": None,
        "seq": None,
        "errors": [],
        "removed": [],
    }
    if isinstance(raw, dict):
        kind = raw.get("type")
        if isinstance(kind, str) and kind in EVENT_FIELDS:
            result["type"] = kind
    try:
        event = EVENT_ADAPTER.validate_python(raw, context={"now": now})
    except ValidationError as exc:
        result["errors"] = [e.model_dump() for e in format_validation_error(exc)]
        return result, None

    result["run_id"] = event.run_id
    removed: list[dict[str, str]] = result["removed"]
    known = EVENT_FIELDS[event.type]
    # Field names are echoed only in a safe form: a hostile string used as a field name stays unseen.
    removed.extend(
        removal(privacy.reportable_key(key, pos), "unknown_field")
        for pos, key in enumerate(raw, 1)
        if key not in known
    )

    item: Incoming
    if isinstance(event, StepEvent):
        result["seq"] = event.seq
        item = step_record(
            index, event.run_id, event.seq, event.step_type.value, event.name, event.status.value,
            event.started_at, event.ended_at, event.latency_ms, event.attempt, event.retry_of_seq,
            event.parent_seq, event.error_class, event.failure_code, event.metadata, removed,
        )
    elif isinstance(event, FailureEvent):
        item = failure_record(index, event.run_id, event.failure_type.value, event.failure_code, event.step_seq,
                              event.message, event.recorded_at or now, removed)
    else:
        refused = _identity_refused(event)
        if refused:
            result["errors"] = refused
            return result, None
        start = isinstance(event, RunStartEvent)
        item = run_record(
            index, RUN_START if start else RUN_END, event.run_id,
            event.started_at if start else event.ended_at,
            event.agent_id, event.agent_version, event.environment, event.metadata,
            None if start else event.status, removed,
        )
    result["status"] = "pending"
    return result, item
