"""The one verdict rule (agenttracer.verdict): retry links, recovery, container fate, status, cause."""

from __future__ import annotations

import random

from agenttracer.model import MAX_ATTEMPT
from agenttracer.verdict import RetryLinker, StepFacts, judge, link_retries, next_attempt


def step(ref: int, start: int, end: int | None = None, *, name: str = "search", step_type: str = "tool",
         parent: int | None = None, error: bool = False, code: str | None = None, agent: bool = False,
         stated: int | None = None) -> StepFacts:
    return StepFacts(ref, parent, step_type, name, start, start + 5 if end is None else end, error,
                     (code or "connection_error") if error else None, agent, stated)


def links(steps: list[StepFacts]) -> dict[int, tuple[int, int | None]]:
    return {s.ref: (s.attempt, s.retry_of) for s in steps}


# --- the retry rule ---------------------------------------------------------------------------------


def test_a_retry_under_another_parent_links_to_the_failed_attempt() -> None:
    # turn 1 (ref 1) holds the failing tool call; turn 2 (ref 3) re-calls it.
    steps = [step(1, 0, 20, step_type="other", name="turn"), step(2, 5, 10, parent=1, error=True),
             step(3, 30, 60, step_type="other", name="turn"), step(4, 35, 40, parent=3)]
    link_retries(steps)
    assert links(steps)[4] == (2, 2)
    assert links(steps)[3] == (1, None)  # turn 1 ended ok: turn 2 is no retry
    assert judge(steps, invocation_error=None).status == "success"


def test_a_third_attempt_links_to_the_second() -> None:
    steps = [step(1, 0, error=True), step(2, 10, error=True), step(3, 20)]
    link_retries(steps)
    assert links(steps) == {1: (1, None), 2: (2, 1), 3: (3, 2)}
    assert judge(steps, invocation_error=None).status == "success"


def test_a_success_in_between_ends_the_chain() -> None:
    steps = [step(1, 0, error=True), step(2, 10), step(3, 20, error=True), step(4, 30)]
    link_retries(steps)
    assert links(steps) == {1: (1, None), 2: (2, 1), 3: (1, None), 4: (2, 3)}


def test_other_actions_are_not_retries() -> None:
    steps = [step(1, 0, error=True), step(2, 10, name="lookup"), step(3, 20, step_type="llm")]
    link_retries(steps)
    assert links(steps) == {1: (1, None), 2: (1, None), 3: (1, None)}
    verdict = judge(steps, invocation_error=None)
    assert (verdict.status, verdict.unrecovered) == ("partial", [1])


def test_a_call_that_started_before_the_failure_ended_is_not_its_retry() -> None:
    # Two concurrent calls: the one that fails is still running when the other starts.
    steps = [step(1, 0, 50, error=True), step(2, 10, 20), step(3, 60, 70)]
    link_retries(steps)
    assert links(steps) == {1: (1, None), 2: (1, None), 3: (2, 1)}


def test_two_parallel_retries_of_one_failure_both_link_to_it() -> None:
    steps = [step(1, 0, 10, error=True), step(2, 20, 40), step(3, 21, 41)]
    link_retries(steps)
    assert links(steps) == {1: (1, None), 2: (2, 1), 3: (2, 1)}


def test_stated_attempts_win_and_attempts_stop_at_the_maximum() -> None:
    steps = [step(1, 0, error=True, stated=1), step(2, 10, stated=4)]
    link_retries(steps)
    assert links(steps) == {1: (1, None), 2: (4, 1)}
    assert next_attempt(MAX_ATTEMPT, None) == MAX_ATTEMPT


def test_the_batch_rule_is_the_streaming_linker_whatever_the_input_order() -> None:
    rng = random.Random(7)
    facts = [step(i, i * 10, i * 10 + 5, name=rng.choice("ab"), error=rng.random() < 0.5) for i in range(1, 40)]
    linker: RetryLinker[int] = RetryLinker()
    expected = {}
    for s in facts:  # sequential: each ends before the next starts
        expected[s.ref] = linker.start(s.step_type, s.name)
        linker.end(s.step_type, s.name, s.ref, expected[s.ref][0], s.error)
    shuffled = facts[:]
    rng.shuffle(shuffled)
    link_retries(shuffled)
    assert links(facts) == expected


def test_only_restricts_which_steps_are_relinked() -> None:
    steps = [step(1, 0, error=True), step(2, 10)]
    steps[1].retry_of, steps[1].attempt = None, 1  # as stored
    link_retries(steps, only=lambda s: s.ref != 2)
    assert links(steps)[2] == (1, None)


# --- recovery, container fate and status ------------------------------------------------------------


def test_an_agent_that_answered_past_an_always_failing_tool_is_partial() -> None:
    steps = [step(1, 0, error=True), step(2, 10, error=True), step(3, 20, step_type="llm", name="chat")]
    link_retries(steps)
    verdict = judge(steps, invocation_error=None)
    assert verdict.status == "partial"
    assert verdict.unrecovered == [1, 2]
    assert verdict.failure_code is None


def test_a_failing_root_is_a_failure_caused_by_the_innermost_earliest_unrecovered_error() -> None:
    steps = [step(1, 0, 100, step_type="other", name="chain", error=True, code="unhandled_exception"),
             step(2, 10, 20, step_type="llm", name="chat", parent=1, error=True, code="rate_limited")]
    verdict = judge(steps, invocation_error="unhandled_exception")
    assert (verdict.status, verdict.failure_type, verdict.failure_code, verdict.cause_ref) == (
        "failure", "model", "rate_limited", 2)


def test_a_failing_root_without_error_steps_is_an_orchestration_failure_with_its_own_code() -> None:
    verdict = judge([step(1, 0)], invocation_error="timeout")
    assert (verdict.status, verdict.failure_type, verdict.failure_code, verdict.cause_ref) == (
        "failure", "orchestration", "timeout", None)


def test_an_agent_span_in_error_under_an_ok_wrapper_fails_the_run() -> None:
    # The Agents SDK: the workflow root ends OK, the agent span under it carries the error.
    steps = [step(1, 0, 100, step_type="other", name="Assistant", agent=True, error=True),
             step(2, 10, 20, step_type="llm", name="chat", parent=1, error=True, code="rate_limited")]
    verdict = judge(steps, invocation_error=None)
    assert (verdict.status, verdict.failure_type, verdict.failure_code, verdict.cause_ref) == (
        "failure", "model", "rate_limited", 2)


def test_a_nested_agent_in_error_does_not_by_itself_fail_the_run() -> None:
    steps = [step(1, 0, 100, step_type="other", name="triage", agent=True),
             step(2, 10, 20, step_type="other", name="helper", agent=True, parent=1, error=True)]
    assert judge(steps, invocation_error=None, nested_agents={2}).status == "partial"
    assert judge(steps, invocation_error=None).status == "failure"  # unless told, every agent is outermost


def test_the_cause_is_an_action_rather_than_a_wrapper_beside_it() -> None:
    # OpenInference's LangGraph spans: the failing node and the chain holding the model call are siblings.
    steps = [step(1, 0, 100, step_type="other", name="agent", agent=True, error=True),
             step(2, 1, 90, step_type="other", name="call_model", parent=1, error=True),
             step(3, 2, 80, step_type="other", name="RunnableSequence", parent=1, error=True),
             step(4, 3, 40, step_type="llm", name="ChatOpenAI", parent=3, error=True, code="rate_limited")]
    verdict = judge(steps, invocation_error="unhandled_exception")
    assert (verdict.failure_type, verdict.failure_code, verdict.cause_ref) == ("model", "rate_limited", 4)


def test_a_container_that_failed_through_a_recovered_child_is_recovered_too() -> None:
    steps = [step(1, 0, 20, step_type="other", name="Step 1", error=True), step(2, 5, 10, parent=1, error=True),
             step(3, 30, 60, step_type="other", name="Step 2"), step(4, 35, 40, parent=3)]
    link_retries(steps)
    verdict = judge(steps, invocation_error=None)
    assert (verdict.status, verdict.unrecovered) == ("success", [])


def test_a_container_shares_an_unrecovered_childs_fate() -> None:
    steps = [step(1, 0, 20, step_type="other", name="Step 1", error=True), step(2, 5, 10, parent=1, error=True)]
    link_retries(steps)
    verdict = judge(steps, invocation_error=None)
    assert (verdict.status, verdict.unrecovered) == ("partial", [1, 2])


def test_a_recorded_failure_decides_and_keeps_its_own_cause() -> None:
    verdict = judge([step(1, 0)], invocation_error=None, failure_recorded=True)
    assert (verdict.status, verdict.failure_type) == ("failure", None)


def test_errors_beyond_the_view_count_as_unrecovered() -> None:
    assert judge([step(1, 0)], invocation_error=None, errors_beyond_view=True).status == "partial"


def test_a_link_cycle_from_bad_data_ends() -> None:
    a, b = step(1, 0, error=True), step(2, 10, error=True)
    a.retry_of, b.retry_of = 2, 1
    a.parent, b.parent = 2, 1
    assert judge([a, b], invocation_error=None).status == "partial"


def test_a_long_chain_needs_no_recursion() -> None:
    steps = [step(i, i * 10, error=i < 5000) for i in range(1, 5001)]
    link_retries(steps)
    assert steps[-1].attempt == MAX_ATTEMPT
    assert judge(steps, invocation_error=None).status == "success"
