"""Steps driven by callbacks: ``run.begin_step(...)`` started in one place, ``step.end(...)`` in another.

What the framework integrations build on: such a step never becomes the current step, takes its parent
explicitly, may end in another thread, links retries, and an error without an exception object still
makes an error step with a class name and a failure code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agenttracer import AgentTracer, current_run, current_step
from tests.sdk.faults import FaultServer
from tests.sdk.helpers import of_type, one, steps_by_seq

Make = Callable[..., AgentTracer]


def sent(tracer: AgentTracer, server: FaultServer) -> list[dict]:
    assert tracer.flush(5.0), tracer.stats()
    return server.stored()


def test_begun_steps_nest_by_explicit_parent_and_end_in_another_thread(make_tracer: Make,
                                                                       server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        outer = run.begin_step("plan", "graph_node")
        assert current_step() is None  # never the current step: callbacks start and end it elsewhere
        inner = run.begin_step("llm", "chat", parent=outer, metadata={"tokens_in": 3})
        by_seq = run.begin_step("tool", "lookup", parent=outer.seq)
        worker = threading.Thread(target=inner.end)
        worker.start()
        worker.join()
        by_seq.end()
        outer.end()
        outer.end(error_class="Late")  # a second end is ignored
    steps = steps_by_seq(sent(tracer, server))
    assert [(s["seq"], s["step_type"], s["name"], s["status"], s.get("parent_seq")) for s in steps] == [
        (1, "plan", "graph_node", "ok", None), (2, "llm", "chat", "ok", 1), (3, "tool", "lookup", "ok", 1)]
    assert steps[1]["metadata"] == {"tokens_in": 3}
    assert run.status == "success"


def test_an_error_ends_a_begun_step_with_its_class_and_code_and_a_retry_recovers_it(make_tracer: Make,
                                                                                   server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        first = run.begin_step("tool", "lookup")
        first.end(TimeoutError("canary-exception-text"))
        second = run.begin_step("tool", "lookup", retry_of=first)
        second.end()
        spanned = run.begin_step("llm", "generation")
        spanned.end(error_class="ModelBehaviorError", failure_code="invalid_output")
        defaulted = run.begin_step("other", "guardrail")
        defaulted.end(error_class="SpanError")
    events = sent(tracer, server)
    steps = steps_by_seq(events)
    assert [(s["status"], s.get("error_class"), s.get("failure_code"), s["attempt"], s.get("retry_of_seq"))
            for s in steps] == [
        ("error", "TimeoutError", "timeout", 1, None),
        ("ok", None, None, 2, 1),
        ("error", "ModelBehaviorError", "invalid_output", 1, None),
        ("error", "SpanError", "unhandled_exception", 1, None),
    ]
    assert (first.status, first.error_class, second.attempt) == ("error", "TimeoutError", 2)
    # Two error steps nothing recovered: partial, as with ``with`` blocks.
    assert one(events, "run_end")["status"] == "partial"
    assert "canary-exception-text" not in str(events)


def test_a_failure_links_to_the_last_begun_error_step(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    with tracer.start_run() as run:
        run.begin_step("plan", "route").end()
        tool = run.begin_step("tool", "billing_api")
        tool.end(ConnectionError("no route"))
        run.record_failure("tool", "connection_error")
    events = sent(tracer, server)
    assert one(events, "failure")["step_seq"] == tool.seq == 2
    assert one(events, "run_end")["status"] == "failure"


def test_a_disabled_tracer_hands_out_begun_steps_that_record_nothing(make_tracer: Make,
                                                                    server: FaultServer) -> None:
    tracer = make_tracer(server.url, enabled=False)
    with tracer.start_run() as run:
        step = run.begin_step("tool", "lookup", parent=1, retry_of=1)
        step.end(ValueError("x"))
        step.end(error_class="X", failure_code="timeout")
        assert step.seq is None
    assert tracer.flush(1.0)
    assert of_type(server.stored(), "step") == []


def test_a_run_started_with_current_false_leaves_the_context_alone(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url)
    first, second = tracer.start_run(), tracer.start_run()
    first.start(current=False)
    second.start(current=False)
    assert current_run() is None
    first.end()  # ends out of order with the second: nothing to restore, nothing leaks
    second.end()
    assert current_run() is None
    assert [e["type"] for e in sent(tracer, server)].count("run_end") == 2


def test_begun_steps_obey_the_queue_bound_and_every_event_is_accounted_for(make_tracer: Make,
                                                                          server: FaultServer) -> None:
    from tests.sdk.faults import Reply

    server.script(Reply(action="hang"))  # the worker's first request is stuck: the queue fills up
    tracer = make_tracer(server.url, max_queue_size=50, timeout=5.0)
    with tracer.start_run():
        pass
    time.sleep(0.2)  # the worker has taken that run and waits on the stuck request
    with tracer.start_run() as run:
        for _ in range(100):
            run.begin_step("tool", "lookup").end(error_class="ToolError")
    stats = tracer.stats()
    # The second run's start took one of the 50 slots, its first 49 steps the rest; the end is reserved.
    assert stats.dropped == {"queue_full": 100 - 49}
    server._release.set()
    assert tracer.flush(5.0), tracer.stats()
    stats = tracer.stats()
    assert stats.delivered + stats.dropped_total == stats.produced
