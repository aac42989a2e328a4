"""How one batch's run-level events change a stored run: pure Python, no database.

The writer loads each touched run into a ``RunState``, applies the batch's events to it in order
(run_start first, run_end last) and writes the result back. Each ``apply_*`` returns the event's
``Outcome``: accepted (the state changed), duplicate (it already said this) or rejected (a conflict,
with the field and the rule).

Rules for runs (order-independent):

- ``started_at`` is the run_start's time; before the run_start arrives it is the earliest time of any
  event known for the run (it is never NULL). Formally it is the minimum over the run_start and every
  event time, which equals the run_start's time whenever the SDK's clock is consistent.
- Identity (agent_id, agent_version, environment) comes from run_start or run_end; an event whose
  identity differs from the stored one is rejected as a conflict, never applied.
- A second run_end with a different ended_at or status, or a second failure of a different kind, is
  rejected as a conflict; an identical one is a duplicate.
- ``status`` is ``running`` until a run_end sets it; ``duration_ms`` is ended_at - started_at.
- A run belongs to the write path that created it (``runs.source``): the other path's events for
  it are rejected (``other_source_rule``).
- A run the abandonment sweep closed (``store/sql/write/abandon.py``) is running again for any new
  event (``reopen_abandoned``): its end, status and the sweep's failure are forgotten, and the
  batch's events settle it by the rules above. Nothing changes when the batch brings nothing new.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from agenttracer.model import ABANDONED_CODE, MAX_META_KEYS, EventType, FailureType

# Event kinds as plain strings: compared and hashed for every event on the write path.
RUN_START = EventType.RUN_START.value
STEP = EventType.STEP.value
FAILURE = EventType.FAILURE.value
RUN_END = EventType.RUN_END.value

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass(slots=True)
class Incoming:
    """One validated, scrubbed event, with column-named ``values``.

    ``time`` is the event's earliest timestamp (started_at, recorded_at or ended_at): it bounds the
    run's start while the run_start itself is missing.

    ``wire_started`` / ``wire_ended`` (steps from the server's fast path only): the request's own text
    of started_at and ended_at, already checked to be in the SDK's ``YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+00:00)`` form;
    ``store/sql/write/step_rows.py`` turns it into SQLite's stored text without formatting the datetimes again.
    """

    index: int
    kind: str  # a model.EventType value
    run_id: str
    time: datetime
    values: dict[str, Any]
    meta_removed: int = 0
    wire_started: str | None = None
    wire_ended: str | None = None


@dataclass(slots=True)
class Outcome:
    """What became of the event at ``index``; a rejection names the field and the rule it broke."""

    index: int
    status: Status
    field: str | None = None
    rule: str | None = None


@dataclass(slots=True)
class RunState:
    """A stored run (``row``, as read under lock) plus what this batch did to it."""

    row: dict[str, Any]
    dirty: bool = False
    new_steps: bool = False
    failure: dict[str, Any] | None = None
    new_failure: dict[str, Any] | None = None
    times: list[datetime] = field(default_factory=list)
    # For a row created by this batch: the earliest event time, the last resort for started_at.
    fallback_start: datetime | None = None
    # The sweep had closed the run (reopen_abandoned); ``sweep_failure``: with its own failure row.
    reopened: bool = False
    sweep_failure: bool = False


_IDENTITY = ("agent_id", "agent_version", "environment")


def identity_conflict(state: RunState, ev: Incoming, what: str) -> Outcome | None:
    row = state.row
    if row["agent_id"] is None:
        return None
    for name in _IDENTITY:
        if row[name] != ev.values[name]:
            return Outcome(ev.index, "rejected", name, f"differs from the {what} already stored for this run_id")
    return None


def merge_meta(state: RunState, meta: dict[str, Any], removed: int) -> None:
    merged = state.row["meta"]
    for key, value in meta.items():
        if key in merged or len(merged) < MAX_META_KEYS:
            merged[key] = value
        else:
            removed += 1
    state.row["meta_removed"] = (state.row["meta_removed"] or 0) + removed


def apply_run_start(state: RunState, ev: Incoming) -> Outcome:
    row = state.row
    conflict = identity_conflict(state, ev, "identity")
    if conflict is not None:
        return conflict
    started = ev.values["started_at"]
    if row["ended_at"] is not None and started > row["ended_at"]:
        return Outcome(ev.index, "rejected", "started_at", "must not be after the run's stored ended_at")
    meta = ev.values.get("meta") or {}
    current = current_start(state)
    already = (
        row["agent_id"] is not None
        and current is not None
        and current <= started
        and all(k in row["meta"] and row["meta"][k] == v for k, v in meta.items())
    )
    if already:
        return Outcome(ev.index, "duplicate")
    for name in _IDENTITY:
        row[name] = ev.values[name]
    state.times.append(started)
    merge_meta(state, meta, ev.meta_removed)
    state.dirty = True
    return Outcome(ev.index, "accepted")


def apply_run_end(state: RunState, ev: Incoming) -> Outcome:
    row = state.row
    conflict = identity_conflict(state, ev, "identity")
    if conflict is not None:
        return conflict
    ended = ev.values["ended_at"]
    if row["ended_at"] is not None:
        if row["ended_at"] == ended and row["status"] == ev.values["status"]:
            return Outcome(ev.index, "duplicate")
        what = "ended_at" if row["ended_at"] != ended else "status"
        return Outcome(ev.index, "rejected", what, "differs from the run_end already stored for this run_id")
    start = current_start(state)
    if start is not None and ended < start:
        return Outcome(ev.index, "rejected", "ended_at", "must not be before the run's started_at")
    for name in _IDENTITY:
        row[name] = ev.values[name]
    row["ended_at"] = ended
    row["status"] = ev.values["status"]
    state.times.append(ended)
    merge_meta(state, ev.values.get("meta") or {}, ev.meta_removed)
    state.dirty = True
    return Outcome(ev.index, "accepted")


def apply_failure(state: RunState, ev: Incoming) -> Outcome:
    stored = state.failure or state.new_failure
    kind = ("failure_type", "failure_code", "step_seq")
    if stored is not None:
        for name in kind:
            if stored[name] != ev.values[name]:
                return Outcome(ev.index, "rejected", name, "differs from the failure already stored (one per run)")
        return Outcome(ev.index, "duplicate")
    state.new_failure = {"run_id": ev.run_id, **ev.values}
    state.row["failure_type"] = ev.values["failure_type"]
    state.row["failure_code"] = ev.values["failure_code"]
    state.row["meta_removed"] = (state.row["meta_removed"] or 0) + ev.meta_removed
    state.times.append(ev.time)
    state.dirty = True
    return Outcome(ev.index, "accepted")


def current_start(state: RunState) -> datetime | None:
    candidates: Iterable[datetime] = state.times
    if state.row["started_at"] is not None:
        candidates = [*state.times, state.row["started_at"]]
    return min(candidates, default=None)


ABANDONED_TYPE = FailureType.ORCHESTRATION.value
_OTHER_SOURCE_RULES = {
    "sdk": "belongs to a run sent over OTLP (POST /v1/traces); a run is written by one source only",
    "otlp": "belongs to a run sent by the SDK (POST /v1/ingest); a run is written by one source only",
}


def other_source_rule(source: str) -> str:
    """The rule an event from ``source`` (RUN_SOURCES) breaks when its run was created by the other one."""
    return _OTHER_SOURCE_RULES[source]


def reopen_abandoned(state: RunState) -> None:
    """Make a run the sweep closed ``running`` again, in memory: end, status and the sweep's failure
    are forgotten (a failure the agent recorded stays). The writer persists it only if the batch
    changes the run, then also clears ``runs.abandoned`` and deletes the sweep's failure row
    (``store/sql/write/abandon.py: settle_reopened``)."""
    row = state.row
    if not row["abandoned"]:
        return
    state.reopened = True
    row["status"] = "running"
    row["ended_at"] = None
    if row["failure_type"] == ABANDONED_TYPE and row["failure_code"] == ABANDONED_CODE:
        state.sweep_failure = True
        row["failure_type"] = row["failure_code"] = None
