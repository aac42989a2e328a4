"""How an OTLP run's row follows its spans, in every store: pure Python, no database.

The OTLP writers (``store/clickhouse/write/otlp_write.py``; the SQL one has the same rules in
``store/sql/write/otlp_write.py``) read a touched run, assemble the request's new spans onto it
(``store/otlp_assemble.py``) and then settle the run's row here:

* ``new_spans``: which of a request's spans are new, and which of them is the run's root;
* ``settle``: start, end, identity and metadata from the root (docs/otlp.md), and once the root has
  arrived the verdict (``agenttracer.verdict`` via ``otlp_assemble.verdict``), judged again whenever a
  later span arrives; the caller writes what ``Settled`` says;
* ``report``: what the request did, for the server's metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agenttracer.model import MAX_META_KEYS
from agenttracer.store.otlp_assemble import (
    DEFAULT_AGENT_ID,
    DEFAULT_ENVIRONMENT,
    DEFAULT_VERSION,
    Assembly,
    SpanRecord,
    verdict,
)
from agenttracer.store.records import Written
from agenttracer.store.run_state import RunState
from agenttracer.verdict import UNHANDLED


def new_spans(
    spans: dict[str, SpanRecord], known: set[str], root_seen: str | None
) -> tuple[list[SpanRecord], SpanRecord | None]:
    """The spans not stored yet, and among them the run's root (the first parentless span, unless
    the run already has one: a second parentless span of one trace is a step of it)."""
    fresh: list[SpanRecord] = []
    root: SpanRecord | None = None
    for span in spans.values():
        if span.span_id in known or span.span_id == root_seen:
            continue
        fresh.append(span)
        if span.is_root:
            if root is None and root_seen is None:
                root = span
            elif span.step_type is None:
                span.step_type = "other"
    return fresh, root


@dataclass(slots=True)
class Settled:
    """What ``settle`` decided beyond the run row it changed: the failure to store (a dict of the
    ``failures`` columns) or that a stored failure is gone (a late span recovered the run)."""

    failure: dict[str, Any] | None = None
    recovered: bool = False


def settle(
    state: RunState,
    root: SpanRecord | None,
    assembly: Assembly,
    truncated: bool,
    fresh: list[SpanRecord],
    now: datetime,
    nested_agents: Callable[[list[SpanRecord]], set[int]],
) -> Settled:
    """Update the run row from its spans (``state.fallback_start`` carries the new start) and, once its
    root has arrived, judge it. ``nested_agents(view)``: of the view's agent steps in error, those with
    another agent step above them (asked only when a step of the view is in error)."""
    row = state.row
    state.dirty = True
    row["meta_removed"] = (row["meta_removed"] or 0) + sum(s.dropped for s in fresh if s is not root)
    if root is not None:
        _identity(row, root, _named(fresh, assembly), fresh)
        state.fallback_start = root.started_at
        row["ended_at"] = root.ended_at
        row["root_span_id"] = root.span_id
        row["root_error"] = (root.failure_code or UNHANDLED) if root.error else None
        resource = root.resource
        row["meta_removed"] += root.dropped + (resource.dropped if resource else 0)
        meta = row["meta"]
        for source in (resource.meta if resource else {}, root.meta):
            for key, value in source.items():
                if key in meta or len(meta) < MAX_META_KEYS:
                    meta[key] = value
    elif row["agent_id"] is None:
        _identity(row, None, _named(fresh, assembly), fresh)
    if row["root_span_id"] is None:
        if row["ended_at"] is None:  # still running: it starts at its earliest span
            state.fallback_start = min([s.started_at for s in fresh] + [row["started_at"]])
        return Settled()
    nested = nested_agents(assembly.view) if any(s.error for s in assembly.view) else set()
    judged = verdict(assembly.view, row["root_error"], truncated, nested)
    row["status"] = judged.status
    if judged.failure_type is not None and judged.failure_code is not None:
        row["failure_type"], row["failure_code"] = judged.failure_type, judged.failure_code
        return Settled(failure={
            "run_id": row["run_id"], "failure_type": judged.failure_type, "failure_code": judged.failure_code,
            "step_seq": judged.cause_ref, "message": None, "recorded_at": row["ended_at"] or now})  # fmt: skip
    if row["failure_type"] is not None:  # a late span recovered the run
        row["failure_type"] = row["failure_code"] = None
        return Settled(recovered=True)
    return Settled()


def report(written: Written, row: dict[str, Any], was: str, settled: bool, new_steps: list[SpanRecord]) -> None:
    """Count what a request did to one run (only stored values) into ``written``."""
    run_id = row["run_id"]
    written.identities[run_id] = (row["agent_id"], row["agent_version"], row["environment"])
    written.steps += [{"run_id": run_id, "step_type": s.step_type, "latency_ms": s.latency_ms} for s in new_steps]
    if settled:
        written.settled.append((run_id, row["status"]))
    if row["status"] == "failure" and was != "failure":
        written.failed.append((run_id, row["failure_type"], row["failure_code"]))


def step_columns(step: SpanRecord) -> dict[str, Any]:
    """A step's column values (the ``steps`` table's names) from an assembled span."""
    return {
        "run_id": step.run_id,
        "seq": step.seq,
        "step_type": step.step_type,
        "name": step.name,
        "status": "error" if step.error else "ok",
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "latency_ms": step.latency_ms,
        "attempt": step.attempt,
        "retry_of_seq": step.retry_of_seq,
        "parent_seq": step.parent_seq,
        "error_class": step.error_class,
        "failure_code": step.failure_code,
        "meta": step.meta,
        "meta_removed": step.dropped,
        "span_id": step.span_id,
        "parent_span_id": step.parent_span_id,
    }


def _named(fresh: list[SpanRecord], assembly: Assembly) -> list[SpanRecord]:
    """The spans that name an agent, earliest first."""
    return sorted((s for s in [*fresh, *assembly.view] if s.agent_name), key=lambda s: (s.started_at, s.seq))


def _identity(row: dict[str, Any], root: SpanRecord | None, seen: list[SpanRecord], fresh: list[SpanRecord]) -> None:
    """The run's identity (docs/otlp.md): the resource's ``agenttracer.agent_id`` when set, else the
    outermost agent named in the trace (the root's, else the earliest-starting span's that names one),
    else the resource's service; the version likewise (``agenttracer.agent_version``, the root's agent
    version, ``service.version``); the environment from the resource, whose allow-list order already
    chose between ``agenttracer.environment`` and the ``deployment.environment`` spellings."""
    resource = (root.resource if root is not None else None) or next((s.resource for s in fresh if s.resource), None)
    service = resource.meta if resource is not None else {}
    agent = root.agent_name if root is not None else None
    if agent is None:
        agent = next((s.agent_name for s in seen), None)
    version = root.agent_version if root is not None else None
    row["agent_id"] = (_text(service.get("agent_id")) or agent or _text(service.get("service")) or row["agent_id"]
                       or DEFAULT_AGENT_ID)  # fmt: skip
    row["agent_version"] = (_text(service.get("agent_version")) or version or _text(service.get("service_version"))
                            or DEFAULT_VERSION)  # fmt: skip
    row["environment"] = _text(service.get("environment")) or DEFAULT_ENVIRONMENT


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
