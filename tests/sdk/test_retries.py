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
