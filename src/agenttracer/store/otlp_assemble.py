"""Assembling a run from its OTLP spans, one request at a time: numbers, tree, retry links, verdict.

Pure Python, no database. For each run a request touches, the OTLP writer (``store/sql/write/otlp_write.py``)
reads what the rule needs of the stored run through indexes (``store/sql/write/otlp_stored.py`` fills a
``Stored``) and calls ``assemble`` with the request's new spans; the result says what to insert and
which stored rows to update. Nothing here is proportional to the stored trace: only to the request,
to the run's error and retry steps, and to the stored attempts next to the new ones.

Rules (docs/otlp.md states them for users; the retry and verdict rule is ``agenttracer.verdict``):

* **Numbers**: a new span gets the next free seq of its run, a request's spans in start order; a
  stored seq never changes. The run detail orders steps by start time (``store/sql/read/runs.py``).
* **Tree**: ``parent_seq`` is the parent span's seq once that parent is stored; a child stored
  before its parent gets it when the parent arrives. A child of the root span (the run) has none.
* **Retries**: ``agenttracer.verdict.link_retries`` over the new spans and the stored attempts of
  the same actions around them; a late span can relink the stored attempt after it.
* **Verdict**: ``agenttracer.verdict.judge`` over the run's error and retry steps, once the root
  span has arrived; before that the run is ``running``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agenttracer.verdict import ActionKey, StepFacts, Verdict, judge, link_retries, next_attempt

# What a run assembled from spans is called when its resource names no service, version or environment.
DEFAULT_AGENT_ID = "unknown_service"
DEFAULT_VERSION = "unversioned"
DEFAULT_ENVIRONMENT = "development"

# What one request reads of a stored run, on every store (docs/otlp.md "Work per request"): the run's
# error and retry steps re-judged, stored later attempts of one action, parents walked up from an agent
# step in error, and stored children one request may give their newly arrived parent.
VERDICT_ROWS = 10_000
NEIGHBOUR_ROWS = 64
MAX_DEPTH = 64
MAX_ADOPTED = 10_000

# gen_ai.operation.name values and span kinds that make a span an agent's own (docs/otlp.md).
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent"})
AGENT_KINDS = frozenset({"agent"})


def is_agent(meta: dict[str, Any]) -> bool:
    """Whether a span's stored metadata says it is an agent's own span (OpenInference ``AGENT``,
    ``invoke_agent``/``create_agent``, Traceloop ``agent``)."""
    operation, kind = meta.get("operation"), meta.get("span_kind")
    return (isinstance(operation, str) and operation in AGENT_OPERATIONS) or (
        isinstance(kind, str) and kind.lower() in AGENT_KINDS)


@dataclass(slots=True)
class Resource:
    """What a ResourceSpans says about its emitter: kept metadata and how many keys were dropped."""

    meta: dict[str, Any]
    dropped: int
    # The raw ``agenttracer.project`` attribute (None when absent), checked by the Ingest API, never stored.
    project: object = None


@dataclass(slots=True)
class SpanRecord:
    """One accepted span (or one stored step read back), mapped onto the execution model.

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

    @property
    def is_agent(self) -> bool:
        return is_agent(self.meta)

    @property
    def key(self) -> ActionKey:
        return self.step_type or "", self.name

    def facts(self) -> StepFacts:
        # Whether a step is an agent's matters to the verdict only for steps in error.
        return StepFacts(self.seq, self.parent_seq, self.step_type or "", self.name, self.started_at,
                         self.ended_at, self.error, self.failure_code, self.error and self.is_agent,
                         self.explicit_attempt, self.retry_of_seq, self.attempt)


@dataclass(slots=True)
class Stored:
    """What the writer read of a stored run for one request (empty for a run the request creates).

    ``rows``: stored steps the rule reads, by seq — every error or retry step (up to the work limit;
    ``truncated`` says it was passed) and, per action of the new spans, the stored attempts around
    them. ``neighbours``: per action, the stored attempts that ended after the earliest new attempt
    started — the only stored steps a new span can become the previous attempt of. ``parents``: the
    stored seq of each new span's parent span found stored; ``orphans``: stored steps waiting for a
    parent among the new spans, as (seq, parent span id).
    """

    next_seq: int = 1
    rows: dict[int, SpanRecord] = field(default_factory=dict)
    neighbours: dict[ActionKey, list[SpanRecord]] = field(default_factory=dict)
    parents: dict[str, int] = field(default_factory=dict)
    orphans: list[tuple[int, str]] = field(default_factory=list)
    truncated: bool = False


def actions_to_link(new: list[SpanRecord], stored: Stored) -> dict[ActionKey, list[SpanRecord]]:
    """The new attempts whose stored neighbours a writer must read, by action: only an action that failed
    (in ``stored.rows`` — the run's error and retry steps — or among the new spans) can link attempts."""
    failed = {r.key for r in stored.rows.values() if r.error} | {s.key for s in new if s.error}
    by_key: dict[ActionKey, list[SpanRecord]] = {}
    for s in new:
        if s.step_type is not None and s.key in failed:
            by_key.setdefault(s.key, []).append(s)
    return by_key


@dataclass(slots=True)
class Assembly:
    """What a request changes in a run: the stored steps that now have a parent (seq, parent seq)
    and the stored steps relinked (seq, attempt, retry_of_seq), and every step the verdict reads."""

    adopted: list[tuple[int, int]]
    relinked: list[tuple[int, int, int | None]]
    view: list[SpanRecord]
    retry_delta: int  # how many more stored steps are retries (attempt > 1) than before


def assemble(new: list[SpanRecord], stored: Stored) -> Assembly:
    """Number the new steps, link them into the tree and the retry chains, in place."""
    new.sort(key=lambda s: (s.started_at, s.span_id))
    seq_of = dict(stored.parents)
    for seq, step in enumerate(new, start=stored.next_seq):
        step.seq = seq
        seq_of[step.span_id] = seq
    for step in new:
        step.parent_seq = seq_of.get(step.parent_span_id) if step.parent_span_id is not None else None
    # Bounded by the request, not by how many children came before their parent (docs/otlp.md).
    adopted = [(seq, seq_of[parent]) for seq, parent in stored.orphans if parent in seq_of][:MAX_ADOPTED]
    for seq, parent_seq in adopted:
        if seq in stored.rows:
            stored.rows[seq].parent_seq = parent_seq

    view = {**stored.rows, **{s.seq: s for s in new}}
    before = {seq: (s.attempt, s.retry_of_seq) for seq, s in stored.rows.items()}
    # Only an action that failed somewhere in the view can have retries; every other new step is
    # attempt 1 (or what its framework stated) and nothing stored of it changes.
    failed = {s.key for s in view.values() if s.error}
    for step in new:
        if step.key not in failed:
            step.attempt, step.retry_of_seq = next_attempt(None, step.explicit_attempt), None
    if failed:
        relink = _relinkable(new, stored)
        facts = {seq: s.facts() for seq, s in view.items() if s.key in failed}
        for seq, fact in facts.items():
            if seq in stored.rows:
                fact.stated_attempt = _stated(stored.rows[seq])
        link_retries(facts.values(), only=lambda f: f.ref in relink)
        for seq, fact in facts.items():
            view[seq].attempt, view[seq].retry_of_seq = fact.attempt, fact.retry_of
    relinked = [(seq, s.attempt, s.retry_of_seq) for seq, s in stored.rows.items()
                if (s.attempt, s.retry_of_seq) != before[seq]]
    delta = sum((attempt > 1) - (before[seq][0] > 1) for seq, attempt, _ in relinked)
    return Assembly(adopted, relinked, list(view.values()), delta)


def _relinkable(new: list[SpanRecord], stored: Stored) -> set[int]:
    """The steps whose retry link this request may change: its own, the stored attempts that start
    after a new attempt of their action ended, and the stored retries of those actions (a new ok
    attempt between a failure and its retry ends that chain)."""
    out = {s.seq for s in new}
    first_end: dict[ActionKey, datetime] = {}
    for s in new:
        if s.key not in first_end or s.ended_at < first_end[s.key]:
            first_end[s.key] = s.ended_at
    for key, rows in stored.neighbours.items():
        out.update(r.seq for r in rows if key in first_end and r.started_at >= first_end[key])
    out.update(seq for seq, r in stored.rows.items() if r.retry_of_seq is not None and r.key in first_end)
    return out


def _stated(step: SpanRecord) -> int | None:
    """A stored step's attempt number as the framework stated it, if it did."""
    stated = step.meta.get("retry_attempt")
    if isinstance(stated, int) and not isinstance(stated, bool):
        return stated
    return step.attempt if step.attempt > 1 and step.retry_of_seq is None else None


def verdict(view: Iterable[SpanRecord], root_error: str | None, truncated: bool,
            nested_agents: Collection[int] = ()) -> Verdict:
    """The run's verdict once its root has arrived (``root_error``: the root's code if it failed;
    ``nested_agents``: the agent steps with another agent step above them)."""
    facts = [s.facts() for s in view if s.step_type is not None and (s.error or s.retry_of_seq is not None)]
    return judge(facts, invocation_error=root_error, errors_beyond_view=truncated, nested_agents=nested_agents)
