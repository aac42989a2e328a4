"""Steps repeated inside one batch, decided before the writer's lock (``writer._Plan``), on SQLite and
PostgreSQL: the first occurrence (lowest event index) is stored, every later one is a duplicate
whatever it says, and the per-event results equal those of sending the events one by one."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from agenttracer.store.run_state import Outcome
from agenttracer.store.sql.schema.tables import runs, steps
from agenttracer.store.sql.store import SqlStore
from agenttracer.store.sql.write.writer import write_batch
from tests.store import test_writer
from tests.store.test_writer import NOW, incoming
from tests.support.events import failure, new_run_id, run_end, run_start, step, ts


def stored_steps(engine: sa.Engine, run_id: str) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(steps).where(steps.c.run_id == run_id)).mappings().all()
    return {row["seq"]: dict(row) for row in rows}


def write(engine: sa.Engine, events: list[dict[str, Any]]) -> list[Outcome]:
    """test_writer's helper on this module's SQL engine (the repeats are an SQL writer matter)."""
    return test_writer.write(SqlStore(engine), events)


def run_of(engine: sa.Engine, run_id: str) -> dict[str, Any]:
    return test_writer.run_of(SqlStore(engine), run_id)


def test_a_conflicting_repeat_in_the_batch_is_a_duplicate_and_the_first_one_is_stored(engine: sa.Engine) -> None:
    rid = new_run_id()
    outcomes = write(
        engine,
        [
            step(rid, 1, name="first"),
            step(rid, 1, name="second", status="error", error_class="TimeoutError", attempt=2),
            step(rid, 2),
            step(rid, 2, latency_ms=9.0),
            step(rid, 2),
        ],
    )
    assert [(o.index, o.status) for o in outcomes] == [
        (0, "accepted"), (1, "duplicate"), (2, "accepted"), (3, "duplicate"), (4, "duplicate")
    ]
    stored = stored_steps(engine, rid)
    assert (stored[1]["name"], stored[1]["status"], stored[1]["attempt"]) == ("first", "ok", 1)
    assert stored[2]["latency_ms"] == 500.0
    row = run_of(engine, rid)
    assert (row["step_count"], row["error_step_count"], row["retry_count"]) == (2, 0, 0)


def test_the_lowest_event_index_wins_whatever_order_the_events_come_in(engine: sa.Engine) -> None:
    rid = new_run_id()
    items = incoming([step(rid, 1, name="index_zero"), step(rid, 1, name="index_one"), step(rid, 2)])
    outcomes = write_batch(engine, list(reversed(items)), now=NOW)
    assert [(o.index, o.status) for o in outcomes] == [(0, "accepted"), (1, "duplicate"), (2, "accepted")]
    assert stored_steps(engine, rid)[1]["name"] == "index_zero"


def test_repeats_of_stored_steps_and_of_each_other_in_one_batch(engine: sa.Engine) -> None:
    rid = new_run_id()
    write(engine, [step(rid, 1), step(rid, 2)])
    outcomes = write(engine, [step(rid, 2), step(rid, 2, name="other"), step(rid, 3), step(rid, 3), step(rid, 1)])
    assert [o.status for o in outcomes] == ["duplicate", "duplicate", "accepted", "duplicate", "duplicate"]
    assert sorted(stored_steps(engine, rid)) == [1, 2, 3]
    assert run_of(engine, rid)["step_count"] == 3


def test_every_step_time_in_the_batch_bounds_the_start_of_a_run_without_run_start(engine: sa.Engine) -> None:
    # As before the decision moved out of the lock: a run known only from steps starts at the
    # earliest time of any step event the batch carried for it, a repeat's included.
    rid = new_run_id()
    write(engine, [step(rid, 3, started_at=ts(30), ended_at=ts(31)), step(rid, 3, started_at=ts(20), ended_at=ts(21))])
    assert run_of(engine, rid)["started_at"] == datetime(2026, 11, 25, 9, 0, 20, tzinfo=timezone.utc)


def test_step_times_reach_run_end_but_not_run_start_checks(engine: sa.Engine) -> None:
    # The steps' earliest time joins the run's times after the run_starts (processing order), so a
    # run_end before the steps' start is refused, while the run_start is judged on its own.
    rid = new_run_id()
    outcomes = write(
        engine,
        [
            step(rid, 1, started_at=ts(-10), ended_at=ts(-9)),
            run_start(rid),
            run_end(rid, ended_at=ts(-20), status="success"),
            failure(rid),
        ],
    )
    assert [(o.status, o.field) for o in outcomes] == [
        ("accepted", None), ("accepted", None), ("rejected", "ended_at"), ("accepted", None)
    ]
    assert run_of(engine, rid)["started_at"] == datetime(2026, 11, 25, 8, 59, 50, tzinfo=timezone.utc)


def test_random_batches_with_repeats_give_the_results_of_a_first_wins_model(engine: sa.Engine) -> None:
    rng = random.Random(11)
    run_ids = [new_run_id() for _ in range(5)]
    seen: set[tuple[str, int]] = set()
    first_name: dict[tuple[str, int], str] = {}
    for batch_no in range(12):
        events = []
        for i in range(rng.randint(1, 40)):
            rid, seq = rng.choice(run_ids), rng.randint(1, 12)
            events.append(step(rid, seq, name=f"b{batch_no}_e{i}", status=rng.choice(["ok", "error"])))
        expected = []
        for ev in events:
            key = (ev["run_id"], ev["seq"])
            expected.append("duplicate" if key in seen else "accepted")
            if key not in seen:
                seen.add(key)
                first_name[key] = ev["name"]
        assert [o.status for o in write(engine, events)] == expected
    with engine.connect() as conn:
        rows = conn.execute(sa.select(steps.c.run_id, steps.c.seq, steps.c.name).where(steps.c.run_id.in_(run_ids)))
        assert {(r.run_id, r.seq): r.name for r in rows} == first_name
        counts = dict(conn.execute(sa.select(runs.c.run_id, runs.c.step_count).where(runs.c.run_id.in_(run_ids))).all())
    for rid in run_ids:
        assert counts[rid] == sum(1 for r, _ in seen if r == rid)
