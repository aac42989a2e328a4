"""What each recording must replay to: the verdicts the issue promises, per scenario.

These are claims about the product, written from the scenarios, not read off what the server does
today: a recovered run is ``success`` with the retry linked; a rate-limited model call that ends the
run is ``failure`` ``model``/``rate_limited`` caused by that call; an agent that answered past a
broken tool is ``partial``. Every framework is held to the same four; ``FRAMEWORK_OVERRIDES`` names
the recordings that legitimately differ, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.conformance.record.scenarios import ANSWERED_CALLS, COMPLETION_TOKENS, PROMPT_TOKENS, TOOL_NAME

STEP_TYPES = {"plan", "retrieval", "tool", "llm", "respond", "other"}


@dataclass(frozen=True)
class Expected:
    status: str
    failure: tuple[str, str] | None  # (failure_type, failure_code)
    failure_step_type: str | None  # the type of the step the failure links to
    tool_statuses: tuple[str, ...]  # the lookup_order tool steps, in order
    retry_linked: bool  # the second lookup_order step is attempt 2, linked to the first
    answered_llm_calls: int  # llm steps that ended ok
    tokens: tuple[int, int]  # tokens in / out summed over the llm steps


def _tokens(scenario: str) -> tuple[int, int]:
    return ANSWERED_CALLS[scenario] * PROMPT_TOKENS, ANSWERED_CALLS[scenario] * COMPLETION_TOKENS


SCENARIO_VERDICTS: dict[str, Expected] = {
    "clean": Expected("success", None, None, ("ok",), False, ANSWERED_CALLS["clean"], _tokens("clean")),
    "retry": Expected("success", None, None, ("error", "ok"), True, ANSWERED_CALLS["retry"], _tokens("retry")),
    "rate_limited": Expected("failure", ("model", "rate_limited"), "llm", ("ok",), False,
                             ANSWERED_CALLS["rate_limited"], _tokens("rate_limited")),
    "tool_fails": Expected("partial", None, None, ("error",), False, ANSWERED_CALLS["tool_fails"],
                           _tokens("tool_fails")),
}
FRAMEWORK_OVERRIDES: dict[tuple[str, str], Expected] = {
    # openinference-instrumentation-smolagents does not end the agent's run span when the run raises, so
    # the trace's root is never exported: to the server this is a crashed process, which the
    # abandoned-run sweep ends as failure orchestration/abandoned (the rate-limited call stays an error step).
    ("smolagents", "rate_limited"): Expected("failure", ("orchestration", "abandoned"), None, ("ok",), False,
                                             ANSWERED_CALLS["rate_limited"], _tokens("rate_limited")),
}


def expected_for(framework: str, scenario: str) -> Expected:
    return FRAMEWORK_OVERRIDES.get((framework, scenario), SCENARIO_VERDICTS[scenario])


def problems(detail: dict[str, Any], expected: Expected) -> list[str]:
    """Every way a run detail (``GET /v1/runs/{id}``) differs from ``expected``; empty when it matches."""
    found: list[str] = []
    run, steps, failure = detail["run"], detail["steps"], detail["failure"]
    if run["status"] != expected.status:
        found.append(f"status {run['status']!r}, expected {expected.status!r}")
    got_failure = (failure["failure_type"], failure["failure_code"]) if failure else None
    if got_failure != expected.failure:
        found.append(f"failure {got_failure}, expected {expected.failure}")
    if expected.failure_step_type is not None:
        by_seq = {s["seq"]: s for s in steps}
        cause = by_seq.get(failure["step_seq"]) if failure else None
        if cause is None or cause["step_type"] != expected.failure_step_type or cause["status"] != "error":
            shape = (cause["step_type"], cause["name"], cause["status"]) if cause else None
            found.append(f"failure step {shape}, expected an error step of type {expected.failure_step_type!r}")
    unknown = {s["step_type"] for s in steps} - STEP_TYPES
    if unknown:
        found.append(f"step types outside the vocabulary: {sorted(unknown)}")
    tools = [s for s in steps if s["step_type"] == "tool" and s["name"] == TOOL_NAME]
    if tuple(s["status"] for s in tools) != expected.tool_statuses:
        found.append(f"{TOOL_NAME} tool steps {[s['status'] for s in tools]}, expected {list(expected.tool_statuses)}")
    if expected.retry_linked:
        if len(tools) < 2 or (tools[1]["retry_of_seq"], tools[1]["attempt"]) != (tools[0]["seq"], 2):
            links = [(s["seq"], s["attempt"], s["retry_of_seq"]) for s in tools]
            found.append(f"retry not linked: {TOOL_NAME} steps (seq, attempt, retry_of_seq) {links}")
    elif any(s["retry_of_seq"] is not None for s in tools):
        found.append(f"{TOOL_NAME} linked as a retry where no call was repeated")
    llm = [s for s in steps if s["step_type"] == "llm"]
    answered = [s for s in llm if s["status"] == "ok"]
    if len(answered) != expected.answered_llm_calls:
        found.append(f"{len(answered)} answered llm steps, expected {expected.answered_llm_calls}")
    tokens = (sum(s["meta"].get("tokens_in", 0) for s in llm), sum(s["meta"].get("tokens_out", 0) for s in llm))
    if tokens != expected.tokens:
        found.append(f"llm tokens in/out {tokens}, expected {expected.tokens}")
    return found
