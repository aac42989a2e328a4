"""Single-flight of identical concurrent reads (``server/query/coalesce.py``): who shares a computation, that no
answer predates its request by more than the join window, errors, and ``GET /v1/stats`` over real HTTP on
SQLite, PostgreSQL and ClickHouse (chdb) (identical answers to concurrent identical requests, a write seen by the
next request)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest

from agenttracer.server.query import create_app
from agenttracer.server.query.coalesce import JOIN_WINDOW_S, SingleFlight
from agenttracer.server.settings import Settings
from tests.support.rundata import T0, RunSpec, StepSpec, insert_runs
from tests.support.servers import serve_app

WAIT_S = 10.0  # a generous bound on thread hand-offs; the tests never sleep for it when all is well


class Clock:
    """A monotonic clock the test moves by hand (the join window is a time rule)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Gate:
    """A computation that records when it started and waits until the test lets it finish."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        self.started.set()
        assert self.release.wait(WAIT_S)
        return self.value


def _call(pool: ThreadPoolExecutor, flights: SingleFlight[str], key: str, compute: Any) -> Any:
    return pool.submit(flights.run, key, compute)


def _wait_for(predicate: Any) -> None:
    done = threading.Event()
    for _ in range(int(WAIT_S / 0.005)):
        if predicate():
            return
        done.wait(0.005)
    raise AssertionError("condition not reached")


def test_a_call_joins_a_computation_that_started_within_the_join_window() -> None:
    clock = Clock()
    flights: SingleFlight[str] = SingleFlight(clock=clock)
    first = Gate("first")
    with ThreadPoolExecutor(4) as pool:
        leader = _call(pool, flights, "k", first)
        assert first.started.wait(WAIT_S)
        clock.now += JOIN_WINDOW_S  # still within the window (inclusive)
        unused = Gate("unused")
        joiner = _call(pool, flights, "k", unused)
        _wait_for(lambda: flights.shared == 1)
        first.release.set()
        assert (leader.result(WAIT_S), joiner.result(WAIT_S)) == ("first", "first")
    assert unused.calls == 0 and flights.computations == 1


def test_a_later_call_gets_a_computation_that_starts_after_it_arrived_and_later_ones_share_it() -> None:
    clock = Clock()
    flights: SingleFlight[str] = SingleFlight(clock=clock)
    first, second, third = Gate("first"), Gate("second"), Gate("third")
    with ThreadPoolExecutor(4) as pool:
        leader = _call(pool, flights, "k", first)
        assert first.started.wait(WAIT_S)
        clock.now += JOIN_WINDOW_S * 1.01  # the running computation is too old to share
        queued = _call(pool, flights, "k", second)
        _wait_for(lambda: "k" in flights._queued)
        joiner = _call(pool, flights, "k", third)  # arrives while the second one is queued: shares it
        _wait_for(lambda: flights.shared == 1)
        assert not second.started.is_set()  # queued: it waits for the running one to end
        first.release.set()
        assert leader.result(WAIT_S) == "first"
        assert second.started.wait(WAIT_S)
        second.release.set()
        assert (queued.result(WAIT_S), joiner.result(WAIT_S)) == ("second", "second")
    assert (first.calls, second.calls, third.calls) == (1, 1, 0)
    assert flights.computations == 2


def test_an_error_reaches_every_call_that_shared_it_and_the_next_call_computes_again() -> None:
    flights: SingleFlight[str] = SingleFlight(join_window_s=WAIT_S)
    started, release = threading.Event(), threading.Event()

    def failing() -> str:
        started.set()
        assert release.wait(WAIT_S)
        raise ValueError("the database said no")

    with ThreadPoolExecutor(4) as pool:
        leader = _call(pool, flights, "k", failing)
        assert started.wait(WAIT_S)
        joiner = _call(pool, flights, "k", lambda: "never")
        _wait_for(lambda: flights.shared == 1)
        release.set()
        for future in (leader, joiner):
            with pytest.raises(ValueError, match="the database said no"):
                future.result(WAIT_S)
    assert flights.run("k", lambda: "fresh") == "fresh"
    assert flights.computations == 2 and not flights._running and not flights._queued


def test_different_keys_never_share() -> None:
    flights: SingleFlight[str] = SingleFlight(join_window_s=WAIT_S)
    a = Gate("a")
    with ThreadPoolExecutor(4) as pool:
        first = _call(pool, flights, "a", a)
        assert a.started.wait(WAIT_S)
        assert flights.run("b", lambda: "b") == "b"  # not held up by "a" either
        a.release.set()
        assert first.result(WAIT_S) == "a"
    assert flights.shared == 0 and flights.computations == 2


def _specs(n: int, offset: int = 0) -> list[RunSpec]:
    return [
        RunSpec("agent", "v1", "prod", T0 + timedelta(seconds=offset + i), "success" if i % 4 else "failure",
                steps=[StepSpec(1, "llm", "gpt", latency_ms=float(i % 50 + 1))])
        for i in range(n)
    ]


def test_concurrent_identical_stats_requests_get_one_answer_and_a_write_is_seen_next(store_url: str) -> None:
    insert_runs(store_url, _specs(40))
    app = create_app(Settings(database_url=store_url))
    params = {"since": (T0 - timedelta(hours=1)).isoformat()}
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        alone = client.get("/v1/stats", params=params).json()
        barrier = threading.Barrier(8)

        def one(_: int) -> dict[str, Any]:
            with httpx.Client(base_url=url, timeout=30) as own:
                barrier.wait(WAIT_S)
                r = own.get("/v1/stats", params=params)
                assert r.status_code == 200, r.text
                return dict(r.json())

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(8)))
        flights = app.state.stats_flights
        assert flights.computations + flights.shared == 9  # every request answered, shared or not
        for answer in [*answers, alone]:  # the moment of the answer: an open window ends at it
            answer.pop("generated_at")
            answer["timeline"].pop("end")
        assert all(answer == alone for answer in answers)
        assert alone["total_runs"] == 40
        insert_runs(store_url, _specs(5, offset=100))
        assert client.get("/v1/stats", params=params).json()["total_runs"] == 45
