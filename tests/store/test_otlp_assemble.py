"""The OTLP assembler (pure): new spans get the next seqs, stored ones keep theirs, late parents are
adopted, and retry links follow agenttracer.verdict across what is stored and what is new."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agenttracer.store.otlp_assemble import SpanRecord, Stored, assemble, verdict

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def rec(span_id: str, start: int, parent: str | None = "root", step_type: str = "tool", name: str = "t",
        error: bool = False, attempt: int | None = None, seq: int = 0, retry_of: int | None = None,
        stored_attempt: int = 1, parent_seq: int | None = None, kind: str | None = None) -> SpanRecord:
    return SpanRecord(
        run_id="r", span_id=span_id, parent_span_id=parent, step_type=step_type, name=name,
        started_at=T0 + timedelta(milliseconds=start), ended_at=T0 + timedelta(milliseconds=start + 5),
        latency_ms=5.0, error=error, error_class=None, failure_code="timeout" if error else None,
        explicit_attempt=attempt, agent_name=None, agent_version=None,
        meta={"span_kind": kind} if kind else {}, dropped=0, seq=seq, parent_seq=parent_seq,
        attempt=stored_attempt, retry_of_seq=retry_of,
    )


def shape(steps: list[SpanRecord]) -> list[tuple[str, int, int | None, int, int | None]]:
    return [(s.span_id, s.seq, s.parent_seq, s.attempt, s.retry_of_seq) for s in steps]


def test_a_new_run_is_numbered_in_start_order_with_its_tree() -> None:
    steps = [rec("c", 30), rec("a", 10), rec("b", 20, parent="a"), rec("d", 20)]
    assemble(steps, Stored())
    assert shape(steps) == [("a", 1, None, 1, None), ("b", 2, 1, 1, None), ("d", 3, None, 1, None),
                            ("c", 4, None, 1, None)]


def test_new_spans_take_the_next_seqs_and_stored_children_are_adopted() -> None:
    child = rec("c", 20, parent="p", seq=1)
    stored = Stored(next_seq=2, rows={1: child}, orphans=[(1, "p")])
    parent = rec("p", 10)
    assembly = assemble([parent], stored)
    assert parent.seq == 2 and child.parent_seq == 2
    assert assembly.adopted == [(1, 2)] and assembly.relinked == []


def test_a_late_failed_attempt_relinks_the_stored_one_after_it() -> None:
    retry = rec("b", 20, seq=1)  # stored first: at the time nothing before it had failed
    stored = Stored(next_seq=2, rows={1: retry}, neighbours={("tool", "t"): [retry]})
    failed = rec("a", 0, error=True)
    assembly = assemble([failed], stored)
    assert (failed.seq, failed.attempt, failed.retry_of_seq) == (2, 1, None)
    assert (retry.attempt, retry.retry_of_seq) == (2, 2)
    assert assembly.relinked == [(1, 2, 2)] and assembly.retry_delta == 1
    assert verdict(assembly.view, None, False).status == "success"


def test_a_stored_step_that_started_before_the_new_one_ended_is_left_alone() -> None:
    earlier = rec("b", 0, seq=1, error=True)
    stored = Stored(next_seq=2, rows={1: earlier}, neighbours={("tool", "t"): [earlier]})
    new = rec("a", 1, error=True)  # overlaps: neither is the other's retry
    assembly = assemble([new], stored)
    assert assembly.relinked == [] and new.retry_of_seq is None


def test_stated_attempts_win_and_a_stored_stated_attempt_is_kept() -> None:
    steps = [rec("a", 0, error=True, attempt=1), rec("b", 10, attempt=4)]
    assemble(steps, Stored())
    assert shape(steps) == [("a", 1, None, 1, None), ("b", 2, None, 4, 1)]


def test_a_stored_stated_attempt_survives_a_late_span_that_relinks_it() -> None:
    first = rec("a", 0, error=True, seq=1)
    later = rec("c", 40, seq=2, retry_of=1, stored_attempt=5)  # LangChain said retry:attempt:5
    later.meta["retry_attempt"] = 5  # where the mapping keeps a stated attempt
    stored = Stored(next_seq=3, rows={1: first, 2: later}, neighbours={("tool", "t"): [later]})
    second = rec("b", 20, error=True)  # the attempt in between arrives late
    assemble([second], stored)
    assert (second.attempt, second.retry_of_seq) == (2, 1)
    assert (later.attempt, later.retry_of_seq) == (5, second.seq)  # relinked, its stated number kept


def test_the_verdict_needs_the_root_and_counts_errors_past_the_limit_as_unrecovered() -> None:
    steps = [rec("a", 0, parent="root", kind="AGENT", step_type="other", error=True)]
    assemble(steps, Stored())
    assert verdict(steps, None, False).status == "failure"  # an agent span under the root failed
    ok = [rec("b", 0)]
    assemble(ok, Stored())
    assert verdict(ok, None, True).status == "partial"
    assert verdict(ok, "timeout", False).failure_code == "timeout"
