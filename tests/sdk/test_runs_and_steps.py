"""How runs and steps are recorded: order, nesting, errors, failures, run status, metadata, async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from agenttracer import AgentTracer, current_run, traced
from tests.sdk.faults import FaultServer
from tests.sdk.helpers import of_type, one, steps_by_seq

Make = Callable[..., AgentTracer]


def sent(tracer: AgentTracer, server: FaultServer) -> list[dict]:
    assert tracer.flush(5.0), tracer.stats()
    return server.stored()


def test_a_run_sends_start_ordered_steps_and_end_with_utc_times(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    before = datetime.now(timezone.utc)
    with tracer.start_run(metadata={"tenant_tier": "gold"}) as run:
        with run.step("plan", "analyze_query"):
            pass
        with run.step("retrieve", "kb_search") as step:  # an alias of "retrieval"
            step.set(result_count=3)
        with run.step("tool", "billing_api"):
            pass
        run.set(ticket_count=1)
    after = datetime.now(timezone.utc)
    events = sent(tracer, server)

    start, end = one(events, "run_start"), one(events, "run_end")
    assert start["run_id"] == end["run_id"] == run.run_id
    assert (start["agent_id"], start["agent_version"], start["environment"]) == ("test-agent", "v1", "test")
    assert start["metadata"] == {"tenant_tier": "gold"}
    assert end["status"] == "success" == run.status
    assert end["metadata"] == {"tenant_tier": "gold", "ticket_count": 1}
    steps = steps_by_seq(events)
    assert [(s["seq"], s["step_type"], s["name"], s["status"], s["attempt"]) for s in steps] == [
        (1, "plan", "analyze_query", "ok", 1),
        (2, "retrieval", "kb_search", "ok", 1),
        (3, "tool", "billing_api", "ok", 1),
    ]
    assert steps[1]["metadata"] == {"result_count": 3}
    for event in [start, end, *steps]:
        for key in ("started_at", "ended_at"):
            if key in event:
                assert event[key].endswith("Z")
                when = datetime.fromisoformat(event[key].replace("Z", "+00:00"))
                assert before - timedelta(seconds=1) <= when <= after + timedelta(seconds=1)
    assert all(s["latency_ms"] >= 0 for s in steps)
    assert steps[0]["started_at"] <= steps[1]["started_at"] <= steps[2]["started_at"]


def test_step_latency_comes_from_the_monotonic_clock(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run, run.step("llm", "draft") as step:
        threading.Event().wait(0.02)
    (event,) = of_type(sent(tracer, server), "step")
    assert 15 <= event["latency_ms"] < 1000
    assert step.latency_ms == pytest.approx(event["latency_ms"])


def test_a_raising_step_keeps_class_and_code_but_never_the_message(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    boom = TimeoutError("customer jane@example.com said something private")
    with tracer.start_run() as run, pytest.raises(TimeoutError) as caught, run.step("tool", "crm_lookup"):
        raise boom
    assert caught.value is boom  # the very same exception, unchanged
    events = sent(tracer, server)
    (step,) = of_type(events, "step")
    assert (step["status"], step["error_class"], step["failure_code"]) == ("error", "TimeoutError", "timeout")
    assert "jane" not in repr(server.received) and "private" not in repr(server.received)
    # Caught and not recorded as a failure: the run completed, but not cleanly.
    assert one(events, "run_end")["status"] == "partial"


def test_an_escaping_exception_fails_the_run_as_unhandled_and_propagates(make_tracer: Make,
                                                                      server: FaultServer) -> None:
    tracer = make_tracer(server.url)

    class PlannerBroke(RuntimeError):
        pass

    error = PlannerBroke("details")
    with pytest.raises(PlannerBroke) as caught, tracer.start_run() as run:
        with run.step("plan", "decide"):
            pass
        with run.step("tool", "search"):
            raise error
    assert caught.value is error
    events = sent(tracer, server)
    failure = one(events, "failure")
    assert (failure["failure_type"], failure["failure_code"], failure["step_seq"]) == (
        "orchestration", "unhandled_exception", 2)
    assert "message" not in failure
    assert one(events, "run_end")["status"] == "failure"
    assert steps_by_seq(events)[1]["error_class"] == "PlannerBroke"


def test_an_exception_raised_outside_any_step_is_not_linked_to_a_step(make_tracer: Make,
                                                                     server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with pytest.raises(KeyError), tracer.start_run():
        raise KeyError("x")
    failure = one(sent(tracer, server), "failure")
    assert failure["failure_code"] == "unhandled_exception" and "step_seq" not in failure


def test_record_failure_after_the_step_links_the_last_error_step(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        with run.step("plan", "analyze"):
            pass
        try:
            with run.step("tool", "external_api"):
                raise ConnectionResetError()
        except ConnectionError:
            run.record_failure(failure_type="tool", failure_code="connection_error", message="API unreachable")
        run.record_failure(failure_type="model", failure_code="timeout")  # at most one: ignored
    events = sent(tracer, server)
    failure = one(events, "failure")
    assert failure == {**failure, "failure_type": "tool", "failure_code": "connection_error", "step_seq": 2,
                       "message": "API unreachable"}
    assert one(events, "run_end")["status"] == "failure"


def test_record_failure_can_name_its_step_or_none(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        with run.step("retrieval", "kb") as kb:
            kb.set(result_count=0)
        run.record_failure(failure_type="retrieval", failure_code="empty_result", step=kb)
    failure = one(sent(tracer, server), "failure")
    assert failure["step_seq"] == 1


def test_nested_steps_record_their_parent(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        with run.step("plan", "outer"):
            with run.step("tool", "inner"), run.step("tool", "innermost"):
                pass
            with run.step("llm", "sibling"):
                pass
        with run.step("respond", "top"):
            pass
    steps = steps_by_seq(sent(tracer, server))
    assert [(s["name"], s.get("parent_seq")) for s in steps] == [
        ("outer", None), ("inner", 1), ("innermost", 2), ("sibling", 1), ("top", None)]


def test_async_runs_and_concurrent_tasks_keep_their_own_parents(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)

    async def fetch(run, name: str) -> None:
        async with run.step("tool", name):
            await asyncio.sleep(0.01)
            async with run.step("llm", name + "_summary"):
                await asyncio.sleep(0)

    async def agent() -> None:
        async with tracer.start_run() as run, run.step("plan", "fan_out"):
            await asyncio.gather(fetch(run, "a"), fetch(run, "b"), fetch(run, "c"))

    asyncio.run(agent())
    steps = {s["name"]: s for s in of_type(sent(tracer, server), "step")}
    assert sorted(s["seq"] for s in steps.values()) == list(range(1, 8))
    for name in "abc":
        assert steps[name]["parent_seq"] == steps["fan_out"]["seq"]
        assert steps[name + "_summary"]["parent_seq"] == steps[name]["seq"]


def test_the_decorator_records_sync_and_async_calls_in_the_current_run(make_tracer: Make,
                                                                      server: FaultServer) -> None:
    tracer = make_tracer(server.url)

    @tracer.traced("tool")
    def lookup_order(order_id: int) -> int:
        return order_id * 2

    @traced("llm", "draft_reply")
    async def draft() -> str:
        return "ok"

    assert lookup_order(1) == 2  # outside a run: just the function
    with tracer.start_run() as run:
        assert current_run() is run
        assert lookup_order(21) == 42
        assert asyncio.run(draft()) == "ok"
    assert current_run() is None
    steps = steps_by_seq(sent(tracer, server))
    assert [(s["step_type"], s["name"]) for s in steps] == [("tool", "lookup_order"), ("llm", "draft_reply")]


def test_metadata_goes_through_the_privacy_policy_and_removals_are_counted(make_tracer: Make,
                                                                          server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run, run.step("llm", "answer_draft") as step:
        step.set(tokens_in=812, user_prompt="tell me the secret plan", http_status=200)
    (event,) = of_type(sent(tracer, server), "step")
    assert event["metadata"] == {"tokens_in": 812, "http_status": 200}
    assert "secret plan" not in repr(server.received)
    assert tracer.stats().removed == {"step_metadata:forbidden_key": 1}


def test_an_unknown_step_type_is_recorded_as_other_without_raising(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        with run.step("daydream", "wander"):
            pass
        with run.step("Tool-Call", "api"):  # case and hyphens are normalised onto the alias
            pass
    steps = steps_by_seq(sent(tracer, server))
    assert [s["step_type"] for s in steps] == ["other", "tool"]
    assert tracer.stats().coerced == {"step_type": 1}


def test_an_invalid_failure_is_counted_as_dropped_not_raised(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        run.record_failure(failure_type="network", failure_code="timeout")
    events = sent(tracer, server)
    assert of_type(events, "failure") == []
    assert one(events, "run_end")["status"] == "failure"
    stats = tracer.stats()
    assert stats.dropped == {"invalid_failure": 1}
    assert stats.delivered + stats.dropped_total == stats.produced == 3


def test_the_servers_abandoned_code_is_not_sent_as_an_agents_failure(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        run.record_failure(failure_type="orchestration", failure_code="abandoned")
    events = sent(tracer, server)
    assert of_type(events, "failure") == [] and one(events, "run_end")["status"] == "failure"
    assert tracer.stats().dropped == {"invalid_failure": 1}


def test_seq_numbers_stay_unique_and_ordered_across_threads(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    seen: dict[int, list[int]] = {}

    def worker(index: int, run) -> None:
        mine = []
        for _ in range(200):
            with run.step("tool", f"worker_{index}") as step:
                pass
            mine.append(step.seq)
        seen[index] = mine

    with tracer.start_run() as run:
        threads = [threading.Thread(target=worker, args=(i, run)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    steps = of_type(sent(tracer, server), "step")
    assert sorted(s["seq"] for s in steps) == list(range(1, 1601))
    for mine in seen.values():
        assert mine == sorted(mine)
    assert all("parent_seq" not in s for s in steps)  # a new thread starts outside any step


def test_a_disabled_tracer_records_nothing_but_the_agent_behaves_the_same(make_tracer: Make,
                                                                         server: FaultServer) -> None:
    tracer = make_tracer(server.url, enabled=False)
    calls = []
    with tracer.start_run() as run:
        with run.step("tool", "x") as step:
            step.set(n=1)
        for attempt in run.retrying("tool", "flaky", attempts=3, retry_on=ValueError):
            with attempt:
                calls.append(1)
                if len(calls) < 3:
                    raise ValueError()
        run.record_failure(failure_type="tool", failure_code="timeout")
    assert len(calls) == 3
    assert tracer.flush(1.0)
    assert server.received == [] and tracer.stats().produced == 0

    tracer.enabled = True  # and back on at run time
    with tracer.start_run() as run, run.step("tool", "y"):
        pass
    assert len(of_type(sent(tracer, server), "step")) == 1


def test_wrong_arguments_on_the_hot_path_never_raise(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    shared = {"tier": "gold"}
    with tracer.start_run(metadata=["not", "a", "mapping"]) as run:  # type: ignore[arg-type]
        with run.step(42, None, metadata=[1, 2, 3]):  # type: ignore[arg-type]
            pass
        with run.step("tool", "shared_meta", metadata=shared) as step:
            step.set(http_status=200)
        with run.step("tool", "x", retry_of="nonsense"):  # type: ignore[arg-type]
            pass
    step.set(late=True)  # after the block: ignored
    assert shared == {"tier": "gold"}  # the caller's dict is never mutated
    steps = steps_by_seq(sent(tracer, server))
    assert [(s["step_type"], s["name"], s.get("metadata")) for s in steps] == [
        ("other", "42", None), ("tool", "shared_meta", {"tier": "gold", "http_status": 200}), ("tool", "x", None)]
    assert tracer.stats().removed == {"step_metadata:not_a_mapping": 1}
