"""The writer's record for each event kind, built in one place for both ways an event is converted.

The model path (``events``) and the hand-written fast path (``fastpath``) validate differently but must
store exactly the same columns: both hand their checked values to these builders, which apply the
server-side privacy pass (``scrub``) and build the ``Incoming`` record. ``removed`` collects what the
policy dropped, by key and reason only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agenttracer.model import MAX_ERROR_CLASS_LEN, MAX_NAME_LEN
from agenttracer.server.ingest.scrub import scrub_message, scrub_metadata, scrub_name
from agenttracer.store.run_state import FAILURE, RUN_END, RUN_START, STEP, Incoming

__all__ = ["FAILURE", "RUN_END", "RUN_START", "STEP", "failure_record", "run_record", "step_record"]


def step_record(index: int, run_id: str, seq: int, step_type: str, name: str, status: str, started_at: datetime,
                ended_at: datetime, latency_ms: float, attempt: int, retry_of_seq: int | None,
                parent_seq: int | None, error_class: str | None, failure_code: str | None, metadata: Any,
                removed: list[dict[str, str]], wire_started: str | None = None,
                wire_ended: str | None = None) -> Incoming:
    values = {
        "run_id": run_id,
        "seq": seq,
        "step_type": step_type,
        "name": scrub_name("name", name, MAX_NAME_LEN, removed),
        "status": status,
        "started_at": started_at,
        "ended_at": ended_at,
        "latency_ms": latency_ms,
        "attempt": attempt,
        "retry_of_seq": retry_of_seq,
        "parent_seq": parent_seq,
        "error_class": (
            scrub_name("error_class", error_class, MAX_ERROR_CLASS_LEN, removed) if error_class is not None else None
        ),
        "failure_code": failure_code,
    }
    values["meta"] = scrub_metadata(metadata, removed)
    values["meta_removed"] = len(removed)
    return Incoming(index, STEP, run_id, started_at, values, len(removed), wire_started, wire_ended)


def run_record(index: int, kind: str, run_id: str, when: datetime, agent_id: str | None,
               agent_version: str | None, environment: str | None, metadata: Any, status: str | None,
               removed: list[dict[str, str]]) -> Incoming:
    """A run_start (``when`` is started_at) or a run_end (``when`` is ended_at, with ``status``)."""
    values: dict[str, Any] = {"agent_id": agent_id, "agent_version": agent_version, "environment": environment}
    values["meta"] = scrub_metadata(metadata, removed)
    if kind == RUN_START:
        values["started_at"] = when
    else:
        values["ended_at"] = when
        values["status"] = status
    return Incoming(index, kind, run_id, when, values, len(removed))


def failure_record(index: int, run_id: str, failure_type: str, failure_code: str, step_seq: int | None,
                   message: str | None, recorded_at: datetime, removed: list[dict[str, str]]) -> Incoming:
    values = {
        "failure_type": failure_type,
        "failure_code": failure_code,
        "step_seq": step_seq,
        "message": scrub_message(message, removed),
        "recorded_at": recorded_at,
    }
    return Incoming(index, FAILURE, run_id, recorded_at, values, len(removed))
