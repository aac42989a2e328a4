"""The writer on every store (SQLite, PostgreSQL, ClickHouse): exact run counters under replays and any
arrival order, conflicts refused, and concurrent batches that neither fail nor double count."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.interface import Store
from agenttracer.store.records import WriteReport
from agenttracer.store.run_state import Incoming, Outcome
from agenttracer.store.sql.schema.tables import steps
from agenttracer.store.sql.write.writer import write_batch
from tests.support.events import T0, failure, new_run_id, run_end, run_start, step, ts
from tests.support.incoming import incoming as converted
from tests.support.stored import stored_run, table_counts

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def incoming(events: list[dict[str, Any]]) -> list[Incoming]:
    return converted(events, NOW)


def write(store: Store, events: list[dict[str, Any]]) -> list[Outcome]:
    return store.write_batch(incoming(events), now=NOW)


def run_of(store: Store, run_id: str) -> dict[str, Any]:
    return stored_run(store, run_id)


def sample_run(run_id: str) -> list[dict[str, Any]]:
    return [
        run_start(run_id, metadata={"region": "eu"}),
        step(run_id, 1, step_type="plan"),
        step(run_id, 2, status="error", error_class="TimeoutError", failure_code="timeout"),
        step(run_id, 3, attempt=2, retry_of_seq=2, status="error", failure_code="timeout"),
        step(run_id, 4, attempt=3, retry_of_seq=3),
        failure(run_id, step_seq=3),
        run_end(run_id, status="failure", metadata={"final_attempts": 3}),
    ]


EXPECTED = {
    "agent_id": "support-agent",
    "status": "failure",
    "started_at": T0,
    "step_count": 4,
    "error_step_count": 2,
    "retry_count": 2,
    "failure_type": "tool",
    "failure_code": "timeout",
    "duration_ms": 60_000.0,
    "meta": {"region": "eu", "final_attempts": 3},
}


def assert_expected(row: dict[str, Any]) -> None:
    assert {k: row[k] for k in EXPECTED} == EXPECTED


def test_one_batch_stores_a_complete_run(store: Store) -> None:
    rid = new_run_id()
    outcomes = write(store, sample_run(rid))
    assert [o.status for o in outcomes] == ["accepted"] * 7
    assert_expected(run_of(store, rid))
    assert table_counts(store) == (1, 4, 1)


@pytest.mark.parametrize("seed", range(4))
def test_any_arrival_order_and_batching_with_replays_gives_the_same_run(store: Store, seed: int) -> None:
    rid = new_run_id()
    events = sample_run(rid)
    rng = random.Random(seed)
    shuffled = events + rng.sample(events, 3)  # with some replays mixed in
    rng.shuffle(shuffled)
    cuts = sorted(rng.sample(range(1, len(shuffled)), 3))
    for start, stop in itertools.pairwise([0, *cuts, len(shuffled)]):
        write(store, shuffled[start:stop])
        row = run_of(store, rid)
        assert row["started_at"] is not None
    assert_expected(run_of(store, rid))
    assert table_counts(store) == (1, 4, 1)


def test_a_run_known_only_from_steps_starts_at_its_earliest_event(store: Store) -> None:
    rid = new_run_id()
    write(store, [step(rid, 5, started_at=ts(30), ended_at=ts(31))])
    assert run_of(store, rid)["started_at"] == datetime(2026, 11, 25, 9, 0, 30, tzinfo=timezone.utc)
    write(store, [step(rid, 2, started_at=ts(10), ended_at=ts(11))])
    row = run_of(store, rid)
    assert row["started_at"] == datetime(2026, 11, 25, 9, 0, 10, tzinfo=timezone.utc)
    assert (row["agent_id"], row["status"], row["step_count"]) == (None, "running", 2)
    write(store, [run_start(rid)])
    assert run_of(store, rid)["started_at"] == T0


def test_duplicates_inside_one_batch_store_once(store: Store) -> None:
    rid = new_run_id()
    outcomes = write(store, [step(rid, 1), step(rid, 1), run_start(rid), run_start(rid), failure(rid), failure(rid)])
    assert [o.status for o in outcomes] == ["accepted", "duplicate", "accepted", "duplicate", "accepted", "duplicate"]
    assert table_counts(store) == (1, 1, 1)


def test_conflicts_are_rejected_and_leave_the_stored_run_alone(store: Store) -> None:
    rid = new_run_id()
    write(store, sample_run(rid))
    outcomes = write(
        store,
        [
            run_start(rid, agent_id="other-agent"),
            run_end(rid, environment="staging", status="failure"),
            run_end(rid, status="success"),
            run_end(rid, status="failure", ended_at=ts(61)),
            failure(rid, failure_type="model", step_seq=3),
        ],
    )
    assert [(o.status, o.field) for o in outcomes] == [
        ("rejected", "agent_id"),
        ("rejected", "environment"),
        ("rejected", "status"),
        ("rejected", "ended_at"),
        ("rejected", "failure_type"),
    ]
    assert all(o.rule for o in outcomes)
    assert_expected(run_of(store, rid))


def test_a_run_cannot_end_before_it_started(store: Store) -> None:
    rid = new_run_id()
    outcomes = write(store, [run_end(rid, ended_at=ts(-5)), run_start(rid)])
    assert [(o.status, o.field) for o in outcomes] == [("rejected", "ended_at"), ("accepted", None)]
    later = new_run_id()
    write(store, [run_start(later, started_at=ts(100))])
    assert write(store, [run_end(later, ended_at=ts(99))])[0].field == "ended_at"
    ended = new_run_id()
    write(store, [run_end(ended, ended_at=ts(10))])
    assert write(store, [run_start(ended, started_at=ts(11))])[0].field == "started_at"


def test_concurrent_batches_for_the_same_runs_neither_fail_nor_double_count(store: Store) -> None:
    run_ids = [new_run_id() for _ in range(4)]
    batches: list[list[dict[str, Any]]] = []
    for seq in range(1, 41):
        # Every batch touches every run, in a different order, to provoke lock contention.
        order = run_ids[seq % 4 :] + run_ids[: seq % 4]
        batches.append([step(rid, seq, attempt=2 if seq % 5 == 0 else 1) for rid in order])
    batches += [[run_start(rid) for rid in run_ids]] * 3
    errors: list[BaseException] = []

    def worker(chunk: list[list[dict[str, Any]]]) -> None:
        try:
            for batch in chunk:
                write(store, batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(batches[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for rid in run_ids:
        row = run_of(store, rid)
        assert (row["step_count"], row["retry_count"], row["agent_id"]) == (40, 8, "support-agent")
    assert table_counts(store) == (4, 160, 0)


def test_steps_are_stored_exactly_as_sqlalchemy_reads_and_filters_them(engine: sa.Engine) -> None:
    rid = new_run_id()
    events = [step(rid, 1, started_at=ts(1.25), ended_at=ts(2), metadata={"http_status": 200, "cached": True})]
    write_batch(engine, incoming(events), now=NOW)
    started = datetime(2026, 11, 25, 9, 0, 1, 250000, tzinfo=timezone.utc)
    with engine.connect() as conn:
        row = conn.execute(sa.select(steps).where(steps.c.started_at >= started)).mappings().one()
        assert conn.execute(sa.select(steps).where(steps.c.started_at > started)).first() is None
    assert row["started_at"] == started and row["started_at"].tzinfo is not None
    assert row["meta"] == {"http_status": 200, "cached": True}
    assert (row["attempt"], row["retry_of_seq"], row["latency_ms"]) == (1, None, 500.0)


def test_the_report_names_each_touched_runs_stored_identity(store: Store) -> None:
    known, early = new_run_id(), new_run_id()
    write(store, [run_start(known, agent_id="billing", agent_version="3.0", environment="staging")])
    report = WriteReport()
    store.write_batch(incoming([step(known, 1), step(early, 1)]), now=NOW, report=report)
    # The run known from an earlier batch is named as stored; one whose start has not come is not yet.
    assert report.identities == {known: ("billing", "3.0", "staging"), early: (None, None, None)}
    assert report.retries == 0
