"""From one raw JSON event to a storable record: strict validation, then the privacy policy.

``convert_event`` never raises for bad input: it returns the event's result entry (rejected with
field/rule errors, or pending with the list of removed keys) and, when the event is valid, the
``Incoming`` record for the writer. Values that the policy removed are never returned or logged.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agenttracer import privacy
from agenttracer.model import MAX_ERROR_CLASS_LEN, MAX_MESSAGE_LEN, MAX_META_STRING_LEN, MAX_NAME_LEN
from agenttracer.server.wire import (
    EVENT_ADAPTER,
    EVENT_FIELDS,
    FailureEvent,
    RunEndEvent,
    RunStartEvent,
    StepEvent,
    format_validation_error,
    has_bad_chars,
)
from agenttracer.store.writer import Incoming

log = logging.getLogger("agenttracer.ingest")

_MAX_ECHOED_KEY = 64


def safe_key(key: object) -> str:
    """A key as it may be echoed back: bounded, and without characters JSON or logs choke on."""
    text = key if isinstance(key, str) else str(key)
    text = text[:_MAX_ECHOED_KEY]
    return "".join("?" if has_bad_chars(ch) else ch for ch in text) if has_bad_chars(text) else text


def _removal(key: str, reason: str) -> dict[str, str]:
    return {"key": safe_key(key), "reason": reason}


def scrub_metadata(value: Any, removed: list[dict[str, str]], prefix: str = "metadata") -> dict[str, Any]:
    """The storable part of an event's metadata; every dropped key is appended to ``removed``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        removed.append(_removal(prefix, "not_an_object"))
        return {}
    try:
        kept, removals = privacy.scrub_metadata(value)
    except Exception as exc:  # fail closed: a policy error must never let metadata through
        log.warning("privacy policy failed on metadata (%s): dropped it", type(exc).__name__)
        removed.append(_removal(prefix, "policy_error"))
        return {}
    removed.extend(_removal(f"{prefix}.{r.key}", r.reason) for r in removals)
    clean: dict[str, Any] = {}
    for key, item in kept.items():
        # Belt and braces below the policy: nothing a database refuses (NUL, lone surrogates) and
        # nothing longer than the schema promises.
        if isinstance(item, str) and (has_bad_chars(item) or len(item) > MAX_META_STRING_LEN):
            removed.append(_removal(f"{prefix}.{key}", "invalid_characters"))
        elif has_bad_chars(key):
            removed.append(_removal(f"{prefix}.{key}", "invalid_key"))
        else:
            clean[key] = item
    return clean


def _scrub_name(field: str, value: str, max_len: int, removed: list[dict[str, str]]) -> str:
    try:
        kept, reason = privacy.scrub_name(value)
    except Exception as exc:
        log.warning("privacy policy failed on %s (%s): replaced it", field, type(exc).__name__)
        kept, reason = privacy.REDACTED_NAME, "policy_error"
    if reason is None and (len(kept) > max_len or has_bad_chars(kept)):
        kept, reason = privacy.REDACTED_NAME, "too_long"
    if reason is not None:
        removed.append(_removal(field, reason))
    return kept


def _scrub_message(value: str | None, removed: list[dict[str, str]]) -> str | None:
    if value is None:
        return None
    try:
        kept, reason = privacy.scrub_message(value)
    except Exception as exc:
        log.warning("privacy policy failed on a failure message (%s): dropped it", type(exc).__name__)
        kept, reason = None, "policy_error"
    if kept is not None and (has_bad_chars(kept.replace("\n", " ").replace("\t", " ")) or len(kept) > MAX_MESSAGE_LEN):
        kept, reason = None, reason or "invalid_characters"
    if reason is not None:
        removed.append(_removal("message", reason))
    return kept


def _identity_refused(event: RunStartEvent | RunEndEvent) -> list[dict[str, str]]:
    """Identity fields are kept verbatim or not at all: the policy may refuse them, never rewrite them."""
    errors = []
    for field in ("agent_id", "agent_version", "environment"):
        try:
            _, reason = privacy.scrub_name(getattr(event, field))
        except Exception:
            reason = "policy_error"
        if reason is not None:
            errors.append({"field": field, "rule": f"refused by the privacy policy ({reason})"})
    return errors


def convert_event(index: int, raw: Any, now: datetime) -> tuple[dict[str, Any], Incoming | None]:
    """Validate and scrub one event. Returns (its result entry, the record to store or None)."""
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
        event = EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        result["errors"] = [e.model_dump() for e in format_validation_error(exc)]
        return result, None

    result["run_id"] = event.run_id
    removed: list[dict[str, str]] = result["removed"]
    known = EVENT_FIELDS[event.type]
    # Field names are echoed only in a safe form: a hostile string used as a field name stays unseen.
    removed.extend(
        _removal(privacy.reportable_key(key, pos), "unknown_field")
        for pos, key in enumerate(raw, 1)
        if key not in known
    )

    item: Incoming
    if isinstance(event, StepEvent):
        result["seq"] = event.seq
        values = {
            "run_id": event.run_id,
            "seq": event.seq,
            "step_type": event.step_type.value,
            "name": _scrub_name("name", event.name, MAX_NAME_LEN, removed),
            "status": event.status.value,
            "started_at": event.started_at,
            "ended_at": event.ended_at,
            "latency_ms": event.latency_ms,
            "attempt": event.attempt,
            "retry_of_seq": event.retry_of_seq,
            "parent_seq": event.parent_seq,
            "error_class": (
                _scrub_name("error_class", event.error_class, MAX_ERROR_CLASS_LEN, removed)
                if event.error_class is not None
                else None
            ),
            "failure_code": event.failure_code,
        }
        values["meta"] = scrub_metadata(event.metadata, removed)
        values["meta_removed"] = len(removed)
        item = Incoming(index, "step", event.run_id, event.started_at, values, len(removed))
    elif isinstance(event, FailureEvent):
        recorded = event.recorded_at or now
        values = {
            "failure_type": event.failure_type.value,
            "failure_code": event.failure_code,
            "step_seq": event.step_seq,
            "message": _scrub_message(event.message, removed),
            "recorded_at": recorded,
        }
        item = Incoming(index, "failure", event.run_id, recorded, values, len(removed))
    else:
        refused = _identity_refused(event)
        if refused:
            result["errors"] = refused
            return result, None
        values = {
            "agent_id": event.agent_id,
            "agent_version": event.agent_version,
            "environment": event.environment,
        }
        values["meta"] = scrub_metadata(event.metadata, removed)
        if isinstance(event, RunStartEvent):
            values["started_at"] = event.started_at
            item = Incoming(index, "run_start", event.run_id, event.started_at, values, len(removed))
        else:
            values["ended_at"] = event.ended_at
            values["status"] = event.status
            item = Incoming(index, "run_end", event.run_id, event.ended_at, values, len(removed))
    result["status"] = "pending"
    return result, item
