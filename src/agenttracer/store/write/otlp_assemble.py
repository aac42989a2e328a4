"""Assembling a run from its OTLP spans: step order, tree, retries, and how the run settles.

Pure Python, no database. The OTLP writer (``store/otlp_write.py``) loads the spans a run already
has, adds the batch's new ones and calls ``assemble`` on all of them; since spans arrive in any
order and in any number of requests, everything derived is recomputed from the whole set each time,
so the result does not depend on how the trace was split.

Rules (``docs/otlp.md`` states them for users):

* **Order**: steps are numbered 1, 2, 3… by start time (then span id, for equal starts).
* **Tree**: ``parent_seq`` is the parent span's seq when the parent is a step; a child of the run's
  own root span (or of a span not received yet) has none.
* **Retries**: a step that follows a failed step with the same parent, step type and name is its
  retry: attempt = the failed one's attempt + 1, ``retry_of_seq`` = its seq. Where the framework
  states the attempt (Pydantic AI's ``pydantic_ai.tool.retry.attempt``, LangChain's
  ``retry:attempt:N``), that number is the attempt.
* **Failure**: an error step with no retry after it is *unrecovered*. The run fails when its root
  span has ERROR status or an unrecovered error step exists. The causing step is the earliest
  unrecovered error step none of whose descendants is one (the innermost cause); its type gives
  the failure type (tool -> tool, llm -> model, retrieval -> retrieval, else orchestration) and its
  code the failure code. A failing root with no such step is an orchestration failure with the
  root's own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agenttracer.model import MAX_ATTEMPT

FAILURE_TYPE_OF_STEP = {"tool": "tool", "llm": "model", "retrieval": "retrieval"}


@dataclass(slots=True)
class Resource:
    """What a ResourceSpans says about its emitter: kept metadata and how many keys were dropped."""

    meta: dict[str, Any]
    dropped: int
    # The raw ``agenttracer.project`` attribute (None when absent), checked by the Ingest API, never stored.
    project: object = None


@dataclass(slots=True)
class SpanRecord:
    """One accepted span, mapped onto the execution model.

    ``step_type`` None: the span is the run itself (the root of an agent, workflow or chain), not a
    step. ``seq``, ``parent_seq``, ``attempt`` and ``retry_of_seq`` are filled in by ``assemble``.
    """

    run_id: str
    span_id: str
    parent_span_id: str | None
    step_type: str | None
    name: str
    started_at: datetime
    ended_at: datetime
    latency_ms: float
    error: bool
    error_class: str | None
    failure_code: str | None
    explicit_attempt: int | None
    agent_name: str | None
    agent_version: str | None
    meta: dict[str, Any]
    dropped: int
    resource: Resource | None = None
    seq: int = 0
    parent_seq: int | None = None
    attempt: int = 1
    retry_of_seq: int | None = None

    @property
    def is_root(self) -> bool:
        return self.parent_span_id is None

    def derived(self) -> tuple[int, int | None, int, int | None]:
        return self.seq, self.parent_seq, self.attempt, self.retry_of_seq


@dataclass(slots=True)
class Cause:
    """Why a settled run failed: the failure's type and code, and the causing step (if any)."""

    failure_type: str
    failure_code: str
    step_seq: int | None = None


def assemble(steps: list[SpanRecord]) -> None:
    """Number the run's steps by start time and derive their tree and retry links, in place."""
    steps.sort(key=_start_order)
    seq_of: dict[str, int] = {}
    for seq, step in enumerate(steps, start=1):
        step.seq = seq
        seq_of[step.span_id] = seq
    last: dict[tuple[str | None, str | None, str], SpanRecord] = {}
    for step in steps:
        parent = step.parent_span_id
        step.parent_seq = seq_of.get(parent) if parent is not None else None
        key = (parent, step.step_type, step.name)
        previous = last.get(key)
        if previous is not None and previous.error:
            step.attempt = min(step.explicit_attempt or previous.attempt + 1, MAX_ATTEMPT)
            step.retry_of_seq = previous.seq
        else:
            step.attempt = min(step.explicit_attempt or 1, MAX_ATTEMPT)
            step.retry_of_seq = None
        last[key] = step


def _start_order(step: SpanRecord) -> tuple[datetime, str]:
    return step.started_at, step.span_id


def failure_cause(steps: list[SpanRecord]) -> Cause | None:
    """The cause of failure among assembled steps: the innermost earliest unrecovered error step."""
    retried = {step.retry_of_seq for step in steps if step.retry_of_seq is not None}
    unrecovered = {step.span_id: step for step in steps if step.error and step.seq not in retried}
    if not unrecovered:
        return None
    parent_of = {step.span_id: step.parent_span_id for step in steps}
    outer: set[str] = set()
    for span_id in unrecovered:
        parent = parent_of.get(span_id)
        hops = 0
        while parent is not None and parent not in outer and hops < len(steps):
            outer.add(parent)
            parent = parent_of.get(parent)
            hops += 1
    innermost = [step for span_id, step in unrecovered.items() if span_id not in outer]
    step = min(innermost or unrecovered.values(), key=lambda s: s.seq)
    failure_type = FAILURE_TYPE_OF_STEP.get(step.step_type or "", "orchestration")
    return Cause(failure_type, step.failure_code or "unhandled_exception", step.seq)
