"""The verdict rule: which steps are retries of which, which errors were recovered, and a run's status.

One rule for every path — the SDK's run end, the native integrations and the OTLP assembler — stated
for users in docs/failure-handling.md ("How a run's verdict is reached"); this module is its only
implementation. Pure Python, standard library only (it is imported on the agent side).

The pieces:

* ``RetryLinker`` — the retry rule for code that sees steps as they happen (the SDK, the LangChain
  and OpenAI Agents integrations): it remembers, per action, the most recent attempt that ended in
  error, and tells a starting step what it retries.
* ``link_retries`` — the same rule over a finished set of steps (an OTLP trace): it replays their
  starts and ends in time order through a ``RetryLinker``, so both paths agree by construction.
* ``judge`` — recovered and unrecovered errors, container fate, the run's status and its cause.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from agenttracer.model import MAX_ATTEMPT, FailureType, RunStatus

Ref = TypeVar("Ref", bound=Hashable)
ActionKey = tuple[str, str]

FAILURE_TYPE_OF_STEP = {"tool": FailureType.TOOL.value, "llm": FailureType.MODEL.value,
                        "retrieval": FailureType.RETRIEVAL.value}
UNHANDLED = "unhandled_exception"


def action_key(step_type: str, name: str) -> ActionKey:
    """What makes two steps "the same action": their step type and name (for tools, the tool name)."""
    return step_type, name


def next_attempt(previous: int | None, stated: int | None) -> int:
    """The attempt number of a step: what the framework stated, else one more than the attempt it
    retries, else 1; never above ``model.MAX_ATTEMPT``."""
    if stated is not None and stated >= 1:
        return min(stated, MAX_ATTEMPT)
    return min(previous + 1, MAX_ATTEMPT) if previous is not None else 1


class RetryLinker(Generic[Ref]):
    """The retry rule, for steps reported as they start and end (in time order).

    ``failed`` maps an action to its most recent attempt that ended in error: ``(ref, attempt)``. A
    step that ends ok clears its action (a success ends the chain); one that ends in error becomes
    the action's most recent failed attempt. ``failed`` is empty whenever no chain is open, which the
    SDK's hot path tests before calling anything here.
    """

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed: dict[ActionKey, tuple[Ref, int]] = {}

    def start(self, step_type: str, name: str, stated_attempt: int | None = None) -> tuple[int, Ref | None]:
        """A step of this action starts now: ``(attempt, ref of the attempt it retries or None)``."""
        previous = self.failed.get((step_type, name))
        if previous is None:
            return next_attempt(None, stated_attempt), None
        return next_attempt(previous[1], stated_attempt), previous[0]

    def end(self, step_type: str, name: str, ref: Ref, attempt: int, error: bool) -> None:
        """A step of this action ended (``error``: it ended in error)."""
        if error:
            self.failed[(step_type, name)] = (ref, attempt)
        else:
            self.failed.pop((step_type, name), None)

    def forget(self) -> None:
        """Drop every open chain (a run ended: attempts never link across runs)."""
        self.failed.clear()


@dataclass(slots=True)
class StepFacts:
    """What the rule reads of one step. ``ref`` identifies the step in its run (the seq), ``parent``
    is its enclosing step's ref (None at the top of the run, or while the parent is unknown).

    ``started``/``ended`` are comparable times (datetimes, or monotonic nanoseconds). ``agent``: the
    step is an agent's own span (OpenInference ``AGENT``, ``invoke_agent``…) rather than an action of
    one. ``retry_of`` and ``attempt`` are what ``link_retries`` derived (or what was stored).
    """

    ref: int
    parent: int | None
    step_type: str
    name: str
    started: Any
    ended: Any
    error: bool
    failure_code: str | None = None
    agent: bool = False
    stated_attempt: int | None = None
    retry_of: int | None = None
    attempt: int = 1


def link_retries(steps: Iterable[StepFacts], *, only: Callable[[StepFacts], bool] | None = None) -> None:
    """Derive ``retry_of`` and ``attempt`` for a set of steps, in place, as ``RetryLinker`` would have
    seen them happen: every end at or before a start is seen first (a retry starts after the failure
    ended), ties broken by ref.

    ``only`` (for a partial view of a stored run): steps it rejects keep their ``retry_of`` and
    ``attempt`` and still count as attempts for the others.
    """
    events: list[tuple[Any, int, int, StepFacts]] = []
    for step in steps:
        events.append((step.started, 1, step.ref, step))
        events.append((step.ended, 0, step.ref, step))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    linker: RetryLinker[int] = RetryLinker()
    for _, is_start, _, step in events:
        if is_start:
            if only is None or only(step):
                step.attempt, step.retry_of = linker.start(step.step_type, step.name, step.stated_attempt)
        else:
            linker.end(step.step_type, step.name, step.ref, step.attempt, step.error)


@dataclass(slots=True)
class Verdict:
    """A finished run's status; for a failure, its type, code and causing step (``cause_ref``)."""

    status: str
    unrecovered: list[int] = field(default_factory=list)
    failure_type: str | None = None
    failure_code: str | None = None
    cause_ref: int | None = None


def status_of(*, failure_recorded: bool, invocation_failed: bool, unrecovered: bool) -> str:
    """``failure`` when a failure is recorded or the agent invocation itself ended in error;
    ``partial`` when it ended fine but some error was never recovered; else ``success``."""
    if failure_recorded or invocation_failed:
        return RunStatus.FAILURE.value
    return RunStatus.PARTIAL.value if unrecovered else RunStatus.SUCCESS.value


def judge(steps: Sequence[StepFacts], *, invocation_error: str | None, failure_recorded: bool = False,
          errors_beyond_view: bool = False, nested_agents: Collection[int] = ()) -> Verdict:
    """The verdict of a finished run from its steps.

    ``steps`` needs to hold every error step and every step linked to another (``retry_of``); other
    steps do not change the verdict and may be left out. ``invocation_error``: the failure code of the
    run's own end when it ended in error (the root span; the SDK's escaping exception), else None.
    ``errors_beyond_view``: some error steps were left out (a stored run past the assembler's work
    limit); they count as unrecovered. ``nested_agents``: the agent steps that have another agent
    step above them; every other agent step is an outermost one, whose unrecovered error is the agent
    invocation's own (the case of a workflow wrapper that always ends OK).
    """
    by_ref = {s.ref: s for s in steps}
    retries: dict[int, list[StepFacts]] = {}
    error_children: dict[int, list[StepFacts]] = {}
    for s in steps:
        if s.retry_of is not None:
            retries.setdefault(s.retry_of, []).append(s)
        if s.error and s.parent is not None and s.parent in by_ref:
            error_children.setdefault(s.parent, []).append(s)
    recovered: dict[int, bool] = {}
    for s in steps:
        if s.error:
            _settle(s, retries, error_children, recovered)
    unrecovered = [s for s in steps if s.error and not recovered[s.ref]]
    top_agent_failed = any(s.agent and s.ref not in nested_agents for s in unrecovered)
    status = status_of(failure_recorded=failure_recorded,
                       invocation_failed=invocation_error is not None or top_agent_failed,
                       unrecovered=bool(unrecovered) or errors_beyond_view)
    verdict = Verdict(status, [s.ref for s in unrecovered])
    if status != RunStatus.FAILURE.value or failure_recorded:
        return verdict
    cause = cause_of(unrecovered)
    if cause is not None:
        verdict.failure_type = FAILURE_TYPE_OF_STEP.get(cause.step_type, FailureType.ORCHESTRATION.value)
        verdict.failure_code = cause.failure_code or UNHANDLED
        verdict.cause_ref = cause.ref
    else:
        verdict.failure_type = FailureType.ORCHESTRATION.value
        verdict.failure_code = invocation_error or UNHANDLED
    return verdict


def _settle(step: StepFacts, retries: dict[int, list[StepFacts]], error_children: dict[int, list[StepFacts]],
            recovered: dict[int, bool]) -> None:
    """Decide ``step`` and everything it depends on (its error retries, its error children), depth
    first without recursion (retry chains can be MAX_ATTEMPT long); a dependency cycle, which only
    bad data can make, counts as not recovered."""
    visiting: set[int] = set()
    stack = [(step, False)]
    while stack:
        node, expanded = stack.pop()
        if node.ref in recovered:
            continue
        if expanded:
            visiting.discard(node.ref)
            recovered[node.ref] = _decide(node, retries, error_children, recovered)
            continue
        if node.ref in visiting:
            continue
        visiting.add(node.ref)
        stack.append((node, True))
        for dep in (*(r for r in retries.get(node.ref, ()) if r.error), *error_children.get(node.ref, ())):
            if dep.ref not in recovered and dep.ref not in visiting:
                stack.append((dep, False))


def _decide(step: StepFacts, retries: dict[int, list[StepFacts]], error_children: dict[int, list[StepFacts]],
            recovered: dict[int, bool]) -> bool:
    # A later attempt that worked (or was itself recovered) recovers this one.
    for retry in retries.get(step.ref, ()):
        if not retry.error or recovered.get(retry.ref, False):
            return True
    # A container that failed through its children shares their fate.
    children = error_children.get(step.ref, [])
    return bool(children) and all(recovered.get(c.ref, False) for c in children)


def cause_of(unrecovered: Sequence[StepFacts]) -> StepFacts | None:
    """The innermost earliest unrecovered error step: among those with no unrecovered error step
    directly under them — and of those, the actions (tool, model, retrieval calls) if there are any,
    since a wrapper span is never where an error begins — the one that started first (then the
    lowest ref)."""
    if not unrecovered:
        return None
    parents = {s.parent for s in unrecovered if s.parent is not None}
    innermost = [s for s in unrecovered if s.ref not in parents] or list(unrecovered)
    actions = [s for s in innermost if s.step_type in FAILURE_TYPE_OF_STEP]
    return min(actions or innermost, key=lambda s: (s.started, s.ref))
