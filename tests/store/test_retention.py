"""The SQL stores' retention batches (SQLite and PostgreSQL only): old runs are deleted in batches of
``batch_size`` runs, each its own short transaction, so a writer gets in between two batches. What every
store does the same — whole runs with their steps and failure, nothing newer, dry runs, runs aged by their
ingest time, the background worker — is tested on every store in test_retention_stores.py."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from agenttracer.store.sql.schema.tables import failures, runs, steps
from agenttracer.store.sql.write.retention import prune

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
