"""Assembling a run from OTLP spans (pure): order by start, tree, retry links, the failure's cause."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agenttracer.store.write.otlp_assemble import SpanRecord, assemble, failure_cause

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def rec(span_id: str, start: int, parent: str | None = "root", step_type: str = "tool", name: str = "t",
        error: bool = False, attempt: int | None = None, code: str | None = None) -> SpanRecord:
    return SpanRecord(
        run_id="r", span_id=span_id, parent_span_id=parent, step_type=step_type, name=name,
        started_at=T0 + timedelta(milliseconds=start), ended_at=T0 + timedelta(milliseconds=start + 5),
        latency_ms=5.0, error=error, error_class=None, failure_code=code if error else None,
        explicit_attempt=attempt, agent_name=None, agent_version=None, meta={}, dropped=0,
    )


def shape(steps: list[SpanRecord]) -> list[tuple[str, int, int | None, int, int | None]]:
    return [(s.span_id, s.seq, s.parent_seq, s.attempt, s.retry_of_seq) for s in steps]


def test_order_is_start_time_whatever_the_arrival_order() -> None:
    steps = [rec("c", 30), rec("a", 10), rec("b", 20, parent="a"), rec("d", 20)]
    assemble(steps)
    # Equal starts are ordered by span id; a parent that is a step gives parent_seq.
    assert shape(steps) == [("a", 1, None, 1, None), ("b", 2, 1, 1, None), ("d", 3, None, 1, None),
                            ("c", 4, None, 1, None)]


def test_a_failed_step_followed_by_a_sibling_of_the_same_kind_and_name_is_retried() -> None:
    steps = [rec("a", 0, error=True), rec("b", 10, step_type="llm", name="chat"), rec("c", 20, error=True),
             rec("d", 30), rec("e", 40, parent="other")]
    assemble(steps)
    assert shape(steps) == [("a", 1, None, 1, None), ("b", 2, None, 1, None), ("c", 3, None, 2, 1),
                            ("d", 4, None, 3, 3), ("e", 5, None, 1, None)]
    assert failure_cause(steps) is None  # every failed attempt was retried


def test_an_ok_step_is_not_retried_and_other_names_are_not_retries() -> None:
    steps = [rec("a", 0), rec("b", 10), rec("c", 20, name="other", error=True), rec("d", 30, name="t")]
    assemble(steps)
    assert [s.attempt for s in steps] == [1, 1, 1, 1]
    cause = failure_cause(steps)
    assert cause is not None and (cause.failure_type, cause.step_seq) == ("tool", 3)


def test_explicit_attempts_win() -> None:
    steps = [rec("a", 0, error=True, attempt=1), rec("b", 10, attempt=4)]
    assemble(steps)
    assert shape(steps) == [("a", 1, None, 1, None), ("b", 2, None, 4, 1)]


def test_the_innermost_earliest_unrecovered_error_is_the_cause() -> None:
    steps = [
        rec("chain", 0, step_type="other", name="chain", error=True),
        rec("llm", 1, parent="chain", step_type="llm", name="chat", error=True, code="rate_limited"),
        rec("tool", 2, parent="chain", error=True, code="timeout"),
    ]
    assemble(steps)
    cause = failure_cause(steps)
    assert cause is not None
    assert (cause.failure_type, cause.failure_code, cause.step_seq) == ("model", "rate_limited", 2)


def test_a_parent_cycle_does_not_hang() -> None:
    steps = [rec("a", 0, parent="b", error=True), rec("b", 1, parent="a", error=True)]
    assemble(steps)
    cause = failure_cause(steps)
    assert cause is not None and cause.failure_type == "tool"
