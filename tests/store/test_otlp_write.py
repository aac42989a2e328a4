"""The OTLP writer on SQLite and PostgreSQL: span ids are identity, runs settle at the root, a late
parent renumbers the run's steps, concurrent requests for one trace store each span once, and a
trace id that is an SDK run's id is refused."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from agenttracer.server.ingest.events import convert_event
from agenttracer.store.schema.tables import failures, runs, steps
from agenttracer.store.write.otlp_assemble import Resource, SpanRecord
from agenttracer.store.write.otlp_write import write_spans
from agenttracer.store.write.writer import write_batch
from tests.support.events import full_run

NOW = datetime.now(timezone.utc)
T0 = NOW - timedelta(minutes=5)
RUN = "11111111-2222-3333-4444-555555555555"
RESOURCE = Resource({"service": "svc", "environment": "qa"}, 1)


def rec(span_id: str, start: int, end: int, parent: str | None = "0000000000000001", step_type: str | None = "tool",
        error: bool = False, run_id: str = RUN) -> SpanRecord:
    return SpanRecord(
        run_id=run_id, span_id=span_id, parent_span_id=parent, step_type=step_type, name=f"n{span_id[-1]}",
        started_at=T0 + timedelta(milliseconds=start), ended_at=T0 + timedelta(milliseconds=end),
        latency_ms=float(end - start), error=error, error_class="TimeoutError" if error else None,
        failure_code="timeout" if error else None, explicit_attempt=None, agent_name=None, agent_version=None,
        meta={"model": "m"}, dropped=2, resource=RESOURCE,
    )


ROOT = rec("0000000000000001", 0, 100, parent=None, step_type=None)


def stored(engine: sa.Engine) -> tuple[dict[str, object], list[tuple[object, ...]]]:
    with engine.connect() as conn:
        run = dict(conn.execute(sa.select(runs).where(runs.c.run_id == RUN)).mappings().one())
        rows = conn.execute(
            sa.select(steps.c.seq, steps.c.span_id, steps.c.parent_seq, steps.c.attempt, steps.c.retry_of_seq)
            .where(steps.c.run_id == RUN).order_by(steps.c.seq)
        ).all()
    return run, [tuple(r) for r in rows]


def test_children_first_then_a_late_parent_then_the_root(engine: sa.Engine) -> None:
    child = rec("00000000000000c1", 20, 30, parent="00000000000000b1")
    sibling = rec("00000000000000d1", 40, 50)
    assert write_spans(engine, [child, sibling], NOW).accepted == 2
    run, rows = stored(engine)
    assert run["status"] == "running" and run["agent_id"] == "svc" and run["ended_at"] is None
    assert rows == [(1, "00000000000000c1", None, 1, None), (2, "00000000000000d1", None, 1, None)]

    parent = rec("00000000000000b1", 10, 35, step_type="other")
    assert write_spans(engine, [parent], NOW).accepted == 1
    _, rows = stored(engine)  # the parent started first: the run's steps were renumbered
    assert rows == [(1, "00000000000000b1", None, 1, None), (2, "00000000000000c1", 1, 1, None),
                    (3, "00000000000000d1", None, 1, None)]

    written = write_spans(engine, [ROOT, child], NOW)
    assert (written.accepted, written.duplicates) == (1, 1)
    run, rows = stored(engine)
    assert run["status"] == "success" and run["step_count"] == 3 and run["ended_at"] == T0 + timedelta(
        milliseconds=100)
    assert run["started_at"] == T0 and run["duration_ms"] == 100.0
    assert run["meta_removed"] == 3 * 2 + 2 + 1  # steps + root + resource
    assert write_spans(engine, [ROOT, child, parent, sibling], NOW).duplicates == 4
    assert stored(engine)[0]["meta_removed"] == run["meta_removed"]


def test_a_late_failing_span_fails_a_settled_run(engine: sa.Engine) -> None:
    write_spans(engine, [ROOT, rec("00000000000000a1", 5, 10)], NOW)
    assert stored(engine)[0]["status"] == "success"
    write_spans(engine, [rec("00000000000000a2", 50, 60, step_type="llm", error=True)], NOW)
    run, _ = stored(engine)
    assert (run["status"], run["failure_type"], run["failure_code"]) == ("failure", "model", "timeout")
    with engine.connect() as conn:
        row = conn.execute(sa.select(failures).where(failures.c.run_id == RUN)).mappings().one()
    assert (row["failure_type"], row["step_seq"], row["message"]) == ("model", 2, None)


def test_concurrent_requests_for_one_trace_store_each_span_once(engine: sa.Engine) -> None:
    spans = [rec(f"{i:016x}", i, i + 1) for i in range(2, 42)]
    errors: list[BaseException] = []

    def send(part: list[SpanRecord]) -> None:
        try:
            write_spans(engine, part, NOW)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(spans[k::3] + spans[:5],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    run, rows = stored(engine)
    assert [r[0] for r in rows] == list(range(1, 41)) and run["step_count"] == 40


def test_a_trace_id_that_is_an_sdk_run_is_refused(engine: sa.Engine) -> None:
    events = full_run(RUN, steps=2)
    write_batch(engine, [item for i, e in enumerate(events) if (item := convert_event(i, e, NOW)[1]) is not None])
    before = stored(engine)
    written = write_spans(engine, [rec("00000000000000e1", 1, 2)], NOW)
    assert (written.accepted, written.rejected) == (0, 1)
    assert stored(engine) == before


def test_a_failure_link_follows_its_step_when_a_late_parent_renumbers_the_run(engine: sa.Engine) -> None:
    failing = rec("00000000000000a2", 50, 60, step_type="llm", error=True)
    write_spans(engine, [ROOT, rec("00000000000000a1", 5, 10), failing], NOW)
    with engine.connect() as conn:
        assert conn.execute(sa.select(failures.c.step_seq).where(failures.c.run_id == RUN)).scalar() == 2
    # A wrapper of the first step arrives late and starts first: every seq moves up by one.
    write_spans(engine, [rec("00000000000000a0", 1, 20, step_type="other")], NOW)
    run, rows = stored(engine)
    assert [r[1] for r in rows] == ["00000000000000a0", "00000000000000a1", "00000000000000a2"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(failures.c.step_seq).where(failures.c.run_id == RUN)).scalar() == 3
    assert run["status"] == "failure"


def test_a_settled_failure_keeps_its_step_when_a_late_retry_and_parent_arrive(engine: sa.Engine) -> None:
    failing = rec("00000000000000a2", 50, 60, error=True)
    write_spans(engine, [ROOT, failing], NOW)
    # Late: a retry of the failed call (recovering it) and a span that starts first (renumbering).
    retry = rec("00000000000000a3", 70, 80)
    retry.name = failing.name
    write_spans(engine, [rec("00000000000000a0", 1, 20, step_type="other"), retry], NOW)
    run, rows = stored(engine)
    assert rows[1] == (2, "00000000000000a2", None, 1, None) and rows[2] == (3, "00000000000000a3", None, 2, 2)
    assert run["status"] == "failure"  # a settled run never turns from failure back to success
    with engine.connect() as conn:
        assert conn.execute(sa.select(failures.c.step_seq).where(failures.c.run_id == RUN)).scalar() == 2


def test_a_run_holds_at_most_max_seq_steps(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from agenttracer.store.write import otlp_write

    monkeypatch.setattr(otlp_write, "MAX_SEQ", 3)
    assert write_spans(engine, [rec(f"{i:016x}", i, i + 1) for i in range(2, 5)], NOW).accepted == 3
    written = write_spans(engine, [rec("00000000000000f1", 9, 10)], NOW)
    assert (written.accepted, written.rejected) == (0, 1)
    assert stored(engine)[0]["step_count"] == 3
