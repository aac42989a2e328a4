"""Retention deletes whole old runs — steps and failure included — in batches, and nothing newer."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from agenttracer.store.sql.schema.tables import failures, runs, steps
from agenttracer.store.sql.write.retention import RetentionWorker, prune, start_retention

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def add_run(engine: sa.Engine, started: datetime | None, *, n_steps: int = 3, failed: bool = False,
            ingested: datetime | None = None) -> str:
    run_id = str(uuid.uuid4())
    ingested = ingested or started or NOW
    with engine.begin() as conn:
        conn.execute(runs.insert().values(
            run_id=run_id, agent_id="support-agent", agent_version="v1", environment="prod",
            status="failure" if failed else "success", started_at=started, ingested_at=ingested,
            updated_at=ingested, step_count=n_steps,
        ))
        t0 = started or ingested
        conn.execute(steps.insert(), [
            {"run_id": run_id, "seq": i, "step_type": "tool", "name": f"step_{i}", "status": "ok",
             "started_at": t0, "ended_at": t0 + timedelta(milliseconds=5), "latency_ms": 5.0}
            for i in range(1, n_steps + 1)
        ])
        if failed:
            conn.execute(failures.insert().values(
                run_id=run_id, failure_type="tool", failure_code="timeout", step_seq=1, recorded_at=t0))
    return run_id


def counts(engine: sa.Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in (runs, steps, failures)
        )


def remaining_run_ids(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(runs.c.run_id)).scalars())


def test_old_runs_go_with_their_steps_and_failures_and_new_ones_stay(engine: sa.Engine) -> None:
    old = [add_run(engine, NOW - timedelta(days=40 + i), failed=i % 2 == 0) for i in range(7)]
    fresh = [add_run(engine, NOW - timedelta(days=29), failed=True), add_run(engine, NOW - timedelta(hours=1))]
    assert counts(engine) == (9, 27, 5)

    result = prune(engine, timedelta(days=30), batch_size=3, now=NOW)

    assert (result.runs, result.steps, result.failures) == (7, 21, 4)
    assert result.batches == 3  # 3 + 3 + 1: each batch is its own short transaction
    assert remaining_run_ids(engine) == set(fresh)
    assert counts(engine) == (2, 6, 1)
    with engine.connect() as conn:
        left = set(conn.execute(sa.select(steps.c.run_id)).scalars())
    assert left == set(fresh) and not left & set(old)


def test_dry_run_counts_and_deletes_nothing(engine: sa.Engine) -> None:
    add_run(engine, NOW - timedelta(days=31), failed=True)
    add_run(engine, NOW - timedelta(days=1))
    result = prune(engine, timedelta(days=30), dry_run=True, now=NOW)
    assert (result.runs, result.steps, result.failures, result.dry_run) == (1, 3, 1, True)
    assert counts(engine) == (2, 6, 1)


def test_a_run_whose_start_never_arrived_is_aged_by_when_it_was_ingested(engine: sa.Engine) -> None:
    stale = add_run(engine, None, ingested=NOW - timedelta(days=60))
    recent = add_run(engine, None, ingested=NOW - timedelta(days=2))
    prune(engine, timedelta(days=30), now=NOW)
    assert remaining_run_ids(engine) == {recent} and stale not in remaining_run_ids(engine)


def test_nothing_to_do_is_a_clean_no_op(engine: sa.Engine) -> None:
    add_run(engine, NOW)
    result = prune(engine, timedelta(days=30), now=NOW)
    assert (result.runs, result.batches) == (0, 0)
    assert counts(engine) == (1, 3, 0)


def test_ingest_can_write_between_batches(engine: sa.Engine) -> None:
    """A writer is never locked out for a whole prune: it gets in between two batches."""
    for i in range(6):
        add_run(engine, NOW - timedelta(days=100 + i))
    written: list[str] = []
    batches_seen = 0

    def between_batches() -> bool:
        nonlocal batches_seen
        if batches_seen == 1:  # after the first batch committed, a new run is ingested
            written.append(add_run(engine, NOW))
        batches_seen += 1
        return False

    result = prune(engine, timedelta(days=30), batch_size=2, now=NOW, should_stop=between_batches)
    assert result.runs == 6 and result.batches == 3
    assert remaining_run_ids(engine) == set(written)


def test_the_worker_prunes_in_the_background_and_stops_promptly(engine: sa.Engine) -> None:
    add_run(engine, datetime.now(timezone.utc) - timedelta(days=10))
    keep = add_run(engine, datetime.now(timezone.utc) - timedelta(days=1))
    worker = start_retention(engine, 5, interval_s=3600, first_delay_s=0)
    assert isinstance(worker, RetentionWorker)
    try:
        deadline = threading.Event()
        for _ in range(100):
            if worker.passes:
                break
            deadline.wait(0.05)
        assert worker.passes == 1 and worker.last_result is not None and worker.last_result.runs == 1
    finally:
        worker.stop(timeout=5)
    assert remaining_run_ids(engine) == {keep}
    assert not any(t.name == "agenttracer-retention" for t in threading.enumerate())


def test_no_retention_setting_means_no_worker(engine: sa.Engine) -> None:
    assert start_retention(engine, None) is None
    assert start_retention(engine, 0) is None
