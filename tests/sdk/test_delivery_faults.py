"""Delivery under faults, over real loopback sockets: the agent never sees an exception or a wait.

Each test drives the SDK against a server that refuses, hangs, errors or throttles, then checks that
retries happen exactly for 429 / 502 / 503 / 504, timeouts and connection errors, and a bounded number
of times for 500; that nothing else is retried; that ``flush`` and ``shutdown`` keep their time
bounds; and that the counts always add up:
delivered + dropped = produced.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

import pytest

from agenttracer import AgentTracer
from tests.sdk.faults import FaultServer, Reply, fault_server, refused_url, silent_listener
from tests.sdk.helpers import of_type

Make = Callable[..., AgentTracer]


def run_steps(tracer: AgentTracer, steps: int) -> list[int]:
    """One run of ``steps`` steps; returns each step's enter+exit time on the agent's thread, in ns."""
    times = []
    with tracer.start_run() as run:
        for _i in range(steps):
            t0 = time.perf_counter_ns()
            with run.step("tool", "lookup"):
                pass
            times.append(time.perf_counter_ns() - t0)
    return times


def assert_agent_unharmed(times: list[int]) -> None:
    """Delivery never blocks the agent: p99 per step stays far below 1 ms even while the backend fails.

    (The exact figures belong to bench/sdk_overhead.py; this only guards against blocking I/O sneaking
    onto the agent's thread, with a margin a busy 2-core machine cannot eat.)
    """
    ordered = sorted(times)
    p99 = ordered[int(len(ordered) * 0.99)]
    print(f"agent thread per step: median {ordered[len(ordered) // 2]} ns, p99 {p99} ns, max {ordered[-1]} ns")
    assert p99 < 1_000_000


def assert_accounted(tracer: AgentTracer, produced: int) -> None:
    stats = tracer.stats()
    assert stats.produced == produced
    assert stats.queued == 0 and stats.in_flight == 0
    assert stats.delivered + stats.dropped_total == stats.produced, stats


def test_batches_are_gzip_json_with_the_key_and_at_most_batch_size(make_tracer: Make, server: FaultServer) -> None:
    tracer = make_tracer(server.url, api_key="at_ingest_test123", batch_size=100)
    run_steps(tracer, 250)
    tracer.shutdown(5.0)
    assert_accounted(tracer, 252)
    assert tracer.stats().delivered == 252
    for request in server.received:
        assert request.headers["Authorization"] == "Bearer at_ingest_test123"
        assert request.headers["Content-Encoding"] == "gzip"
        assert len(request.events) <= 100
    assert len(server.stored()) == 252


# The contract is "within timeout + 100 ms"; the tests allow a little more so that a busy shared machine
# cannot make them flaky. What they guard against is waiting out an HTTP timeout or a backoff (>= 1 s).
SLACK = 0.3


def test_connection_refused_never_reaches_the_agent_and_shutdown_keeps_its_bound(make_tracer: Make) -> None:
    tracer = make_tracer(refused_url(), timeout=5.0)
    assert_agent_unharmed(run_steps(tracer, 2000))
    started = time.monotonic()
    assert tracer.flush(0.3) is False
    assert time.monotonic() - started < 0.3 + SLACK
    started = time.monotonic()
    tracer.shutdown(0.5)
    assert time.monotonic() - started < 0.5 + SLACK
    assert_accounted(tracer, 2002)
    stats = tracer.stats()
    assert stats.delivered == 0 and stats.retried >= 1
    assert stats.dropped == {"shutdown": 2002}


def test_a_server_that_never_answers_times_out_and_is_retried(make_tracer: Make) -> None:
    with silent_listener() as url:
        tracer = make_tracer(url, timeout=0.2)
        assert_agent_unharmed(run_steps(tracer, 500))
        time.sleep(0.6)
        started = time.monotonic()
        tracer.shutdown(0.5)
        assert time.monotonic() - started < 0.5 + SLACK
    assert tracer.stats().retried >= 1
    assert_accounted(tracer, 502)


@pytest.mark.parametrize("status", [400, 401, 403, 413, 422, 501])
def test_final_statuses_are_not_retried_and_counted_by_status(make_tracer: Make, server: FaultServer,
                                                              status: int) -> None:
    server.script(Reply(status))
    tracer = make_tracer(server.url)
    run_steps(tracer, 3)
    tracer.shutdown(2.0)
    assert len(server.received) == 1
    stats = tracer.stats()
    assert stats.retried == 0
    assert stats.dropped == {f"http_{status}": 5}
    assert_accounted(tracer, 5)


def test_a_500_is_retried_then_delivered(make_tracer: Make, server: FaultServer) -> None:
    # A 500 is the server's fault, not the batch's: the same batch is sent again.
    server.script(Reply(500), Reply(500))
    tracer = make_tracer(server.url, max_backoff=0.2)
    run_steps(tracer, 10)
    assert tracer.flush(5.0)
    assert len(server.received) == 3
    assert server.received[0].events == server.received[2].events
    stats = tracer.stats()
    assert (stats.delivered, stats.retried, stats.dropped) == (12, 2, {})


def test_a_server_that_always_answers_500_gets_bounded_retries_then_the_batch_is_dropped(
    make_tracer: Make, server: FaultServer
) -> None:
    from agenttracer.sdk.sending import MAX_SERVER_ERROR_RETRIES

    server.script(*[Reply(500)] * (MAX_SERVER_ERROR_RETRIES + 5))
    tracer = make_tracer(server.url, max_backoff=0.05)
    run_steps(tracer, 3)
    assert tracer.flush(5.0)
    assert len(server.received) == MAX_SERVER_ERROR_RETRIES + 1
    stats = tracer.stats()
    assert stats.retried == MAX_SERVER_ERROR_RETRIES
    assert stats.dropped == {"http_500": 5}
    tracer.shutdown(1.0)
    assert_accounted(tracer, 5)


def test_503_with_retry_after_is_honoured_then_delivered(make_tracer: Make, server: FaultServer) -> None:
    server.script(Reply(503, {"Retry-After": "1"}))
    tracer = make_tracer(server.url)
    run_steps(tracer, 10)
    assert tracer.flush(5.0)
    first, second = server.received[0], server.received[1]
    assert second.at - first.at >= 0.9
    assert first.events == second.events  # the same batch, resent
    stats = tracer.stats()
    assert (stats.delivered, stats.retried, stats.dropped) == (12, 1, {})


@pytest.mark.parametrize("status", [429, 502, 504])
def test_throttling_and_gateway_errors_back_off_and_retry(make_tracer: Make, server: FaultServer,
                                                         status: int) -> None:
    server.script(Reply(status), Reply(status))
    tracer = make_tracer(server.url, max_backoff=0.2)
    run_steps(tracer, 10)
    assert tracer.flush(5.0)
    assert len(server.received) == 3
    assert server.received[2].at - server.received[1].at >= 0.1  # backoff grew (0.5 x 2 x jitter, capped)
    assert (tracer.stats().delivered, tracer.stats().retried) == (12, 2)


def test_rejected_events_are_counted_as_dropped(make_tracer: Make, server: FaultServer) -> None:
    server.script(Reply(200, reject=frozenset({1, 2})))
    tracer = make_tracer(server.url)
    run_steps(tracer, 3)
    tracer.shutdown(2.0)
    stats = tracer.stats()
    assert (stats.delivered, stats.dropped) == (3, {"rejected": 2})
    assert_accounted(tracer, 5)


def test_a_422_whose_events_were_all_rejected_counts_them_as_rejected(make_tracer: Make,
                                                                      server: FaultServer) -> None:
    server.script(Reply(422, reject=frozenset(range(5))))
    tracer = make_tracer(server.url)
    run_steps(tracer, 3)
    tracer.shutdown(2.0)
    assert len(server.received) == 1  # not retried
    assert tracer.stats().dropped == {"rejected": 5}
    assert_accounted(tracer, 5)


def test_a_dropped_connection_is_retried_and_arrives_once(make_tracer: Make, server: FaultServer) -> None:
    server.script(Reply(action="drop"))
    tracer = make_tracer(server.url)
    run_steps(tracer, 20)
    assert tracer.flush(5.0)
    assert len(server.stored()) == 22
    assert tracer.stats().retried == 1


def test_a_server_restart_mid_run_loses_nothing(make_tracer: Make) -> None:
    with fault_server() as first:
        port = first.port
        tracer = make_tracer(first.url, max_backoff=0.2)
        run = tracer.start_run().start()
        times = []
        for _ in range(300):
            t0 = time.perf_counter_ns()
            with run.step("tool", "before"):
                pass
            times.append(time.perf_counter_ns() - t0)
        assert tracer.flush(5.0)
        before = first.stored()
    # The server is gone: steps keep coming and the agent does not notice.
    for _ in range(300):
        t0 = time.perf_counter_ns()
        with run.step("tool", "during"):
            pass
        times.append(time.perf_counter_ns() - t0)
    time.sleep(0.3)
    with fault_server(port) as second:
        for _ in range(300):
            with run.step("tool", "after"):
                pass
        run.end()
        assert tracer.flush(10.0), tracer.stats()
        after = second.stored()
    assert_agent_unharmed(times)
    events = before + after
    seqs = [e["seq"] for e in of_type(events, "step")]
    assert sorted(seqs) == list(range(1, 901))  # every step exactly once
    assert len(of_type(events, "run_start")) == len(of_type(events, "run_end")) == 1
    assert tracer.stats().retried >= 1


def test_overflow_drops_new_steps_but_keeps_runs_complete(make_tracer: Make, server: FaultServer) -> None:
    server.script(Reply(action="hang"))  # the first request is stuck until released
    tracer = make_tracer(server.url, max_queue_size=50, timeout=5.0)
    run_steps(tracer, 1)
    time.sleep(0.2)  # the worker has taken that first run and is waiting on the stuck request
    for _ in range(20):
        run_steps(tracer, 100)
    stats = tracer.stats()
    assert stats.queued <= 50 + 100  # the limit plus the reserve for run starts, ends and failures
    # The second run's start took one of the 50 slots, its first 49 steps the rest.
    assert stats.dropped == {"queue_full": 20 * 100 - 49}
    server._release.set()  # the stuck request ends without an answer: retried, then all delivered
    assert tracer.flush(5.0), tracer.stats()
    stored = server.stored()
    assert len(of_type(stored, "run_start")) == len(of_type(stored, "run_end")) == 21
    assert len(of_type(stored, "step")) == 1 + 49
    assert_accounted(tracer, 3 + 20 * 102)


def test_memory_stays_bounded_while_the_backend_is_down(make_tracer: Make) -> None:
    """An hour of outage, compressed: far more events than the queue holds, and memory stops growing."""
    tracer = make_tracer(refused_url(), max_queue_size=2_000, max_backoff=60.0)
    tracemalloc.start()
    try:
        run_steps(tracer, 5_000)
        warm, _ = tracemalloc.get_traced_memory()
        for _ in range(20):
            run_steps(tracer, 5_000)
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stats = tracer.stats()
    assert stats.queued <= 2_000 + 200
    assert stats.dropped["queue_full"] > 20 * 5_000 - 2_200
    assert grown - warm < 256 * 1024, f"grew by {grown - warm} bytes"


def test_shutdown_cuts_a_hanging_request_short(make_tracer: Make) -> None:
    with silent_listener() as url:
        tracer = make_tracer(url, timeout=30.0)  # the request itself would wait 30 s
        run_steps(tracer, 10)
        time.sleep(0.2)  # the worker is now waiting for an answer that never comes
        started = time.monotonic()
        tracer.shutdown(0.5)
        assert time.monotonic() - started < 0.5 + SLACK
    assert tracer.stats().dropped == {"shutdown": 12}
