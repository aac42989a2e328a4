"""The OTLP writer on every store (SQLite, PostgreSQL, ClickHouse): span ids are identity, a span keeps
the seq of its arrival, a late parent is adopted, retries link across parents, runs are judged by the one
verdict rule (agenttracer.verdict) whatever order the spans arrive in, concurrent requests store each
span once, and a trace id that is an SDK run's id is refused."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import datetime, timedelta, timezone

import pytest

from agenttracer.server.ingest.events import convert_event
from agenttracer.store.interface import Store
from agenttracer.store.otlp_assemble import Resource, SpanRecord
from agenttracer.store.records import Written
from agenttracer.store.run_state import Incoming
from tests.support.events import full_run
from tests.support.stored import clear, stored_failure, stored_run, stored_steps

NOW = datetime.now(timezone.utc)
T0 = NOW - timedelta(minutes=5)
RUN = "11111111-2222-3333-4444-555555555555"
RESOURCE = Resource({"service": "svc", "environment": "qa"}, 1)
ROOT_ID = "0000000000000001"


def rec(span_id: str, start: int, end: int, parent: str | None = ROOT_ID, step_type: str | None = "tool",
        error: bool = False, name: str | None = None, code: str = "timeout", kind: str | None = None,
        run_id: str = RUN) -> SpanRecord:
    meta: dict[str, object] = {"model": "m"}
    if kind is not None:
        meta["span_kind"] = kind
    return SpanRecord(
        run_id=run_id, span_id=span_id, parent_span_id=parent, step_type=step_type,
        name=name or f"n{span_id[-1]}", started_at=T0 + timedelta(milliseconds=start),
        ended_at=T0 + timedelta(milliseconds=end), latency_ms=float(end - start), error=error,
        error_class="TimeoutError" if error else None, failure_code=code if error else None, explicit_attempt=None,
        agent_name=None, agent_version=None, meta=meta, dropped=2, resource=RESOURCE,
    )


def root(error: bool = False, code: str = "unhandled_exception") -> SpanRecord:
    return rec(ROOT_ID, 0, 100, parent=None, step_type=None, error=error, code=code, name="agent")


def write_spans(store: Store, spans: list[SpanRecord], now: datetime) -> Written:
    return store.write_spans(spans, now)


def write_batch(store: Store, events: list[Incoming]) -> None:
    store.write_batch(events)


def stored(store: Store) -> tuple[dict[str, object], list[tuple[object, ...]]]:
    run = stored_run(store, RUN)
    names = ("seq", "span_id", "parent_seq", "attempt", "retry_of_seq")
    rows = [tuple(step[name] for name in names) for step in stored_steps(store, RUN)]
    return run, rows


def by_span(store: Store) -> dict[str, tuple[int, object, object, object]]:
    """span id -> (seq, parent span id via parent_seq, attempt, span id of the attempt it retries)."""
    _, rows = stored(store)
    span_of = {r[0]: r[1] for r in rows}
    return {r[1]: (r[0], span_of.get(r[2]), r[3], span_of.get(r[4])) for r in rows}  # type: ignore[call-overload]


def failure_row(store: Store) -> tuple[object, ...] | None:
    return stored_failure(store, RUN)


def seq_of(store: Store, span_id: str) -> int:
    return by_span(store)[span_id][0]


def test_children_first_then_a_late_parent_then_the_root(store: Store) -> None:
    child = rec("00000000000000c1", 20, 30, parent="00000000000000b1")
    sibling = rec("00000000000000d1", 40, 50)
    assert write_spans(store, [child, sibling], NOW).accepted == 2
    run, rows = stored(store)
    assert run["status"] == "running" and run["agent_id"] == "svc" and run["ended_at"] is None
    assert rows == [(1, "00000000000000c1", None, 1, None), (2, "00000000000000d1", None, 1, None)]

    parent = rec("00000000000000b1", 10, 35, step_type="other")
    assert write_spans(store, [parent], NOW).accepted == 1
    _, rows = stored(store)  # the parent started first, yet nothing stored was renumbered: it was adopted
    assert rows == [(1, "00000000000000c1", 3, 1, None), (2, "00000000000000d1", None, 1, None),
                    (3, "00000000000000b1", None, 1, None)]

    written = write_spans(store, [root(), child], NOW)
    assert (written.accepted, written.duplicates) == (1, 1)
    run, rows = stored(store)
    assert run["status"] == "success" and run["step_count"] == 3 and run["ended_at"] == T0 + timedelta(
        milliseconds=100)
    assert run["started_at"] == T0 and run["duration_ms"] == 100.0 and run["root_span_id"] == ROOT_ID
    assert run["meta_removed"] == 3 * 2 + 2 + 1  # steps + root + resource
    assert write_spans(store, [root(), child, parent, sibling], NOW).duplicates == 4
    assert stored(store)[0]["meta_removed"] == run["meta_removed"]


# --- the verdict stories, in every arrival order -----------------------------------------------------

TURN1, FAIL, TURN2, RETRY = "00000000000000a1", "00000000000000a2", "00000000000000a3", "00000000000000a4"


def cross_turn_retry(root_error: bool = False) -> list[SpanRecord]:
    """The model's first turn calls a tool that fails (the error escapes the turn); its next turn calls
    the same tool again, under a new turn span, and it works."""
    return [root(root_error), rec(TURN1, 5, 30, step_type="other", name="Step 1", error=True),
            rec(FAIL, 10, 20, parent=TURN1, name="weather", error=True, code="connection_error"),
            rec(TURN2, 40, 90, step_type="other", name="Step 2"), rec(RETRY, 50, 60, parent=TURN2, name="weather")]


def orders(spans: list[SpanRecord], count: int) -> list[list[SpanRecord]]:
    """``count`` arrival orders: as exported (end order), reversed, root first, and random ones."""
    by_end = sorted(spans, key=lambda s: s.ended_at)
    picked = [by_end, by_end[::-1], [spans[0], *spans[1:]]]
    every = list(itertools.permutations(spans))
    picked += [list(p) for p in random.Random(19).sample(every, min(count, len(every)))]
    return picked


def send_one_by_one(store: Store, order: list[SpanRecord]) -> None:
    for span in order:
        copy = SpanRecord(**{name: getattr(span, name) for name in SpanRecord.__slots__})  # type: ignore[attr-defined]
        assert write_spans(store, [copy], NOW).accepted == 1


@pytest.mark.slow  # ~8 s on chdb: a dozen arrival orders, span by span
def test_a_tool_re_called_under_the_next_turn_is_its_retry_and_the_run_succeeds(store: Store) -> None:
    for order in orders(cross_turn_retry(), 8):
        clear(store)
        send_one_by_one(store, order)
        shape = by_span(store)
        assert shape[RETRY][1:] == (TURN2, 2, FAIL), order
        assert shape[FAIL][1:] == (TURN1, 1, None)
        run, _ = stored(store)
        assert run["status"] == "success", [s.span_id for s in order]
        assert (run["step_count"], run["error_step_count"], run["retry_count"]) == (4, 2, 1)
        assert failure_row(store) is None and run["failure_type"] is None


def test_an_agent_that_answered_past_an_always_failing_tool_is_partial(store: Store) -> None:
    spans = [root(), rec("00000000000000b1", 10, 20, name="weather", error=True),
             rec("00000000000000b2", 30, 40, name="weather", error=True),
             rec("00000000000000b3", 50, 60, step_type="llm", name="chat")]
    for order in orders(spans, 8):
        clear(store)
        send_one_by_one(store, order)
        run, _ = stored(store)
        assert (run["status"], run["failure_type"], run["retry_count"]) == ("partial", None, 1)
        assert by_span(store)["00000000000000b2"][2:] == (2, "00000000000000b1")
        assert failure_row(store) is None


def test_a_rate_limited_model_call_that_ends_the_run_is_a_model_failure(store: Store) -> None:
    llm = "00000000000000c2"
    spans = [root(error=True), rec("00000000000000c1", 5, 95, step_type="other", name="chain", error=True),
             rec(llm, 10, 20, parent="00000000000000c1", step_type="llm", name="chat", error=True,
                 code="rate_limited")]
    for order in orders(spans, 6):
        clear(store)
        send_one_by_one(store, order)
        run, _ = stored(store)
        assert (run["status"], run["failure_type"], run["failure_code"]) == ("failure", "model", "rate_limited")
        assert failure_row(store) == ("model", "rate_limited", seq_of(store, llm))


@pytest.mark.slow  # ~8 s on chdb: a dozen arrival orders, span by span
def test_an_agent_span_in_error_under_an_always_ok_workflow_root_fails_the_run(store: Store) -> None:
    # The OpenAI Agents SDK through OpenInference: an OK "Agent workflow" root and chain, the agent span
    # in ERROR under them, the rate-limited model call under an OK turn span of the agent.
    chain, agent, turn, llm = "00000000000000d1", "00000000000000d2", "00000000000000d3", "00000000000000d4"
    spans = [root(), rec(chain, 2, 98, step_type="other", name="Agent workflow", kind="CHAIN"),
             rec(agent, 5, 95, parent=chain, step_type="other", name="Assistant", kind="AGENT", error=True),
             rec(turn, 8, 90, parent=agent, step_type="other", name="turn", kind="CHAIN"),
             rec(llm, 10, 20, parent=turn, step_type="llm", name="chat", error=True, code="rate_limited")]
    for order in orders(spans, 8):
        clear(store)
        send_one_by_one(store, order)
        run, _ = stored(store)
        assert (run["status"], run["failure_type"], run["failure_code"]) == ("failure", "model", "rate_limited")
        assert failure_row(store) == ("model", "rate_limited", seq_of(store, llm))


def test_a_sub_agent_in_error_under_an_agent_that_carried_on_leaves_the_run_partial(store: Store) -> None:
    outer, inner = "00000000000000d5", "00000000000000d6"
    spans = [root(), rec(outer, 5, 95, step_type="other", name="triage", kind="AGENT"),
             rec(inner, 10, 20, parent=outer, step_type="other", name="helper", kind="AGENT", error=True)]
    for order in orders(spans, 4):
        clear(store)
        send_one_by_one(store, order)
        assert stored(store)[0]["status"] == "partial"


def test_a_late_retry_recovers_a_settled_partial_run_but_not_a_failed_root(store: Store) -> None:
    spans = cross_turn_retry()
    write_spans(store, spans[:4], NOW)
    run, _ = stored(store)
    assert (run["status"], run["failure_type"]) == ("partial", None)
    write_spans(store, spans[4:], NOW)
    assert stored(store)[0]["status"] == "success"

    clear(store)
    spans = cross_turn_retry(root_error=True)
    write_spans(store, spans[:4], NOW)
    assert failure_row(store) == ("tool", "connection_error", seq_of(store, FAIL))
    write_spans(store, spans[4:], NOW)
    run, _ = stored(store)  # the agent itself still ended in error: its own code is the cause now
    assert (run["status"], run["failure_type"], run["failure_code"]) == ("failure", "orchestration",
                                                                         "unhandled_exception")
    assert failure_row(store) == ("orchestration", "unhandled_exception", None)


def test_a_late_ok_attempt_between_a_failure_and_its_retry_ends_the_chain(store: Store) -> None:
    first, late, third = (rec("00000000000000e1", 10, 20, name="api", error=True),
                          rec("00000000000000e2", 30, 40, name="api"),
                          rec("00000000000000e3", 50, 60, name="api", error=True))
    write_spans(store, [root(), first, third], NOW)
    assert by_span(store)["00000000000000e3"][2:] == (2, "00000000000000e1")
    assert stored(store)[0]["retry_count"] == 1
    write_spans(store, [late], NOW)
    shape = by_span(store)
    assert shape["00000000000000e2"][2:] == (2, "00000000000000e1")
    assert shape["00000000000000e3"][2:] == (1, None)
    run, _ = stored(store)
    assert (run["status"], run["retry_count"]) == ("partial", 1)


def test_concurrent_requests_for_one_trace_store_each_span_once(store: Store) -> None:
    spans = [rec(f"{i:016x}", i, i + 1) for i in range(2, 42)]
    errors: list[BaseException] = []

    def send(part: list[SpanRecord]) -> None:
        try:
            write_spans(store, part, NOW)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(spans[k::3] + spans[:5],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    run, rows = stored(store)
    assert sorted(r[0] for r in rows) == list(range(1, 41)) and run["step_count"] == 40
    assert sorted(r[1] for r in rows) == [s.span_id for s in spans]


def test_a_trace_id_that_is_an_sdk_run_is_refused(store: Store) -> None:
    events = full_run(RUN, steps=2)
    write_batch(store, [item for i, e in enumerate(events) if (item := convert_event(i, e, NOW)[1]) is not None])
    before = stored(store)
    written = write_spans(store, [rec("00000000000000e1", 1, 2)], NOW)
    assert (written.accepted, written.rejected) == (0, 1)
    assert stored(store) == before


def test_a_late_parent_adopts_at_most_max_adopted_stored_children(store: Store,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from agenttracer.store import otlp_assemble

    monkeypatch.setattr(otlp_assemble, "MAX_ADOPTED", 3)
    parent_id = "00000000000000b1"
    children = [rec(f"00000000000000c{i}", 20 + i, 21 + i, parent=parent_id) for i in range(5)]
    assert write_spans(store, children, NOW).accepted == 5
    assert write_spans(store, [rec(parent_id, 10, 40, step_type="other")], NOW).accepted == 1
    parents = [parent for _, parent, _, _ in by_span(store).values()]
    # The request's work is bounded: three children got their parent, the other two stay at the top.
    assert (parents.count(parent_id), parents.count(None)) == (3, 3)  # + the parent's own None
    assert write_spans(store, [root()], NOW).accepted == 1
    assert stored(store)[0]["status"] == "success"


def test_a_run_holds_at_most_max_seq_steps(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from agenttracer.store.clickhouse.write import otlp_write as clickhouse_otlp
    from agenttracer.store.sql.write import otlp_write

    monkeypatch.setattr(otlp_write, "MAX_SEQ", 3)
    monkeypatch.setattr(clickhouse_otlp, "MAX_SEQ", 3)
    assert write_spans(store, [rec(f"{i:016x}", i, i + 1) for i in range(2, 5)], NOW).accepted == 3
    written = write_spans(store, [rec("00000000000000f1", 9, 10)], NOW)
    assert (written.accepted, written.rejected) == (0, 1)
    assert stored(store)[0]["step_count"] == 3
