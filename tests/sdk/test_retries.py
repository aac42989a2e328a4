"""Retries are new steps linked to the attempt they retry — never an overwrite — and decide run status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from agenttracer import AgentTracer
from tests.sdk.faults import FaultServer
from tests.sdk.helpers import one, steps_by_seq

Make = Callable[..., AgentTracer]


def sent(tracer: AgentTracer, server: FaultServer) -> list[dict]:
    assert tracer.flush(5.0)
    return server.stored()


def test_retry_of_links_each_attempt_to_the_previous_one(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        previous = None
        for attempt in range(3):
            try:
                with run.step("tool", "billing_api", retry_of=previous) as step:
                    if attempt < 2:
                        raise TimeoutError()
            except TimeoutError:
                previous = step
    events = sent(tracer, server)
    steps = steps_by_seq(events)
    assert [(s["seq"], s["attempt"], s.get("retry_of_seq"), s["status"]) for s in steps] == [
        (1, 1, None, "error"), (2, 2, 1, "error"), (3, 3, 2, "ok")]
    assert one(events, "run_end")["status"] == "success"  # every error was recovered by a later attempt


def test_a_retry_chain_that_never_succeeds_leaves_the_run_partial(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        first = None
        try:
            with run.step("tool", "api") as first:
                raise ConnectionError()
        except ConnectionError:
            pass
        try:
            with run.step("tool", "api", retry_of=first.seq):  # a seq number works too
                raise ConnectionError()
        except ConnectionError:
            pass
        with run.step("respond", "fallback_answer"):
            pass
    events = sent(tracer, server)
    assert [s.get("retry_of_seq") for s in steps_by_seq(events)] == [None, 1, None]
    assert [s["attempt"] for s in steps_by_seq(events)] == [1, 2, 1]
    assert one(events, "run_end")["status"] == "partial"


def test_the_retrying_helper_records_every_attempt_and_returns_on_success(make_tracer: Make,
                                                                         server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    outcomes = [TimeoutError(), ConnectionError(), None]
    with tracer.start_run() as run:
        for attempt in run.retrying("tool", "inventory", attempts=5, retry_on=(TimeoutError, ConnectionError)):
            with attempt as step:
                step.set(http_status=200)
                outcome = outcomes.pop(0)
                if outcome is not None:
                    raise outcome
    events = sent(tracer, server)
    steps = steps_by_seq(events)
    assert [(s["attempt"], s.get("retry_of_seq"), s.get("failure_code")) for s in steps] == [
        (1, None, "timeout"), (2, 1, "connection_error"), (3, 2, None)]
    assert all(s["metadata"] == {"http_status": 200} for s in steps)
    assert one(events, "run_end")["status"] == "success"


def test_the_last_attempts_exception_and_unlisted_exceptions_propagate(make_tracer: Make,
                                                                      server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    last = TimeoutError("third")
    with tracer.start_run() as run:
        errors = [TimeoutError(), TimeoutError(), last]
        with pytest.raises(TimeoutError) as caught:
            for attempt in run.retrying("tool", "slow_api", attempts=3, retry_on=TimeoutError):
                with attempt:
                    raise errors.pop(0)
        assert caught.value is last
        with pytest.raises(KeyError):
            for attempt in run.retrying("tool", "strict_api", attempts=3, retry_on=TimeoutError):
                with attempt:
                    raise KeyError("not retryable")
        run.record_failure(failure_type="tool", failure_code="timeout")
    events = sent(tracer, server)
    steps = steps_by_seq(events)
    assert [(s["name"], s["attempt"]) for s in steps] == [
        ("slow_api", 1), ("slow_api", 2), ("slow_api", 3), ("strict_api", 1)]
    # Linked to the most recent error step unless told otherwise.
    assert one(events, "failure")["step_seq"] == 4


def test_async_retrying_waits_with_asyncio(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)

    async def agent() -> int:
        tries = 0
        async with tracer.start_run() as run:
            async for attempt in run.retrying("llm", "draft", attempts=3, retry_on=ValueError, backoff=0.01):
                async with attempt:
                    tries += 1
                    if tries == 1:
                        raise ValueError()
        return tries

    assert asyncio.run(agent()) == 2
    steps = steps_by_seq(sent(tracer, server))
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "error"), (2, "ok")]


def test_mark_partial_is_a_run_level_choice(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        with run.step("retrieval", "kb") as step:
            step.set(result_count=0)
        run.mark_partial()
    assert one(sent(tracer, server), "run_end")["status"] == "partial"


def test_retrying_rejects_nonsense_arguments_when_called(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run, pytest.raises(ValueError, match="attempts"):
        run.retrying("tool", "x", attempts=0)


# --- the one verdict rule (agenttracer.verdict), as the SDK applies it --------------------------------


def test_a_tool_re_called_in_the_next_turn_is_linked_and_the_run_succeeds(make_tracer: Make,
                                                                          server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        for turn in range(2):
            with run.step("plan", "turn"):
                try:
                    with run.step("tool", "weather"):
                        if turn == 0:
                            raise ConnectionError()
                except ConnectionError:
                    pass  # the model sees the error and calls the tool again next turn
    events = sent(tracer, server)
    assert [(s["name"], s["attempt"], s.get("retry_of_seq"), s["status"]) for s in steps_by_seq(events)] == [
        ("turn", 1, None, "ok"), ("weather", 1, None, "error"), ("turn", 1, None, "ok"), ("weather", 2, 2, "ok")]
    assert one(events, "run_end")["status"] == "success"


def test_a_container_that_failed_through_a_recovered_child_does_not_leave_the_run_partial(
        make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        try:
            with run.step("plan", "Step 1"), run.step("tool", "search"):
                raise TimeoutError()  # escapes the tool and the step around it
        except TimeoutError:
            pass
        with run.step("plan", "Step 2"), run.step("tool", "search"):
            pass
    events = sent(tracer, server)
    assert [(s["name"], s["status"], s.get("retry_of_seq")) for s in steps_by_seq(events)] == [
        ("Step 1", "error", None), ("search", "error", None), ("Step 2", "ok", None), ("search", "ok", 2)]
    assert one(events, "run_end")["status"] == "success"


def test_an_agent_that_answers_past_an_always_failing_tool_is_partial(make_tracer: Make,
                                                                      server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        for _ in range(2):
            try:
                with run.step("tool", "weather"):
                    raise ConnectionError()
            except ConnectionError:
                pass
        with run.step("llm", "chat"):
            pass
    events = sent(tracer, server)
    assert [(s["attempt"], s.get("retry_of_seq")) for s in steps_by_seq(events)] == [(1, None), (2, 1), (1, None)]
    assert one(events, "run_end")["status"] == "partial"


def test_a_success_in_between_ends_the_chain_and_a_stated_attempt_is_kept(make_tracer: Make,
                                                                          server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        for fail in (True, False, True):
            try:
                with run.step("tool", "api"):
                    if fail:
                        raise ConnectionError()
            except ConnectionError:
                pass
        step = run.begin_step("tool", "api", attempt=7)
        step.end()
    events = sent(tracer, server)
    assert [(s["attempt"], s.get("retry_of_seq")) for s in steps_by_seq(events)] == [
        (1, None), (2, 1), (1, None), (7, 3)]
    assert one(events, "run_end")["status"] == "success"


def test_a_rate_limited_model_call_that_ends_the_run_is_a_failure(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)

    class RateLimitError(Exception):
        pass

    with pytest.raises(RateLimitError), tracer.start_run() as run, run.step("llm", "chat"):
        raise RateLimitError()
    events = sent(tracer, server)
    assert one(events, "run_end")["status"] == "failure"
    failure = one(events, "failure")
    assert (failure["failure_type"], failure["failure_code"], failure["step_seq"]) == (
        "orchestration", "unhandled_exception", 1)
