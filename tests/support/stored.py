"""What a store holds, read straight from its tables, for the write-side tests that run on every store:
a run's stored row (the SQL store's column names; identity None until its start, ``meta`` a dict) and
the number of runs, steps and failures (newest versions only on ClickHouse)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from agenttracer.store.interface import Store
from agenttracer.store.keys import Verification


def stored_run(store: Store, run_id: str) -> dict[str, Any]:
    """The stored row of ``run_id`` (AssertionError when there is none)."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        from agenttracer.store.sql.schema.tables import runs

        with engine.connect() as conn:
            return dict(conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().one())
    from agenttracer.store.clickhouse.write.rows import newest_runs

    found = newest_runs(store.conn, [run_id])  # type: ignore[attr-defined]
    assert run_id in found, f"run {run_id} is not stored"
    return found[run_id]


def stored_steps(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The stored steps of ``run_id`` by seq (SQL column names)."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        from agenttracer.store.sql.schema.tables import steps

        with engine.connect() as conn:
            query = sa.select(steps).where(steps.c.run_id == run_id).order_by(steps.c.seq)
            return [dict(row) for row in conn.execute(query).mappings()]
    result = store.conn.query(  # type: ignore[attr-defined]
        "SELECT * FROM steps WHERE run_id = {r:String} ORDER BY version DESC LIMIT 1 BY run_id, seq", {"r": run_id}
    )
    rows = [row for row in result.dicts() if not row["is_deleted"]]
    return sorted(rows, key=lambda row: row["seq"])


def table_counts(store: Store) -> tuple[int, int, int]:
    """How many runs, steps and failures are stored."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        from agenttracer.store.sql.schema.tables import failures, runs, steps

        with engine.connect() as conn:
            count = [
                conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in (runs, steps, failures)
            ]
        return count[0], count[1], count[2]
    conn = store.conn  # type: ignore[attr-defined]
    run_rows = conn.query(
        "SELECT count(), countIf(failure_type IS NOT NULL) FROM"
        " (SELECT * FROM runs ORDER BY version DESC LIMIT 1 BY run_id) WHERE is_deleted = 0"
    ).rows[0]
    step_rows = conn.query(
        "SELECT count() FROM (SELECT * FROM steps ORDER BY version DESC LIMIT 1 BY run_id, seq) WHERE is_deleted = 0"
    ).rows[0]
    return int(run_rows[0]), int(step_rows[0]), int(run_rows[1])


def stored_failure(store: Store, run_id: str) -> tuple[object, ...] | None:
    """The run's stored failure as (failure_type, failure_code, step_seq), None when it has none."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        from agenttracer.store.sql.schema.tables import failures

        with engine.connect() as conn:
            query = sa.select(failures.c.failure_type, failures.c.failure_code, failures.c.step_seq)
            row = conn.execute(query.where(failures.c.run_id == run_id)).first()
        return None if row is None else tuple(row)
    run = stored_run(store, run_id)
    if run["failure_type"] is None:
        return None
    return run["failure_type"], run["failure_code"], run["failure_step_seq"]


def clear(store: Store) -> None:
    """Delete every run, step and failure."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        from agenttracer.store.sql.schema.tables import failures, runs, steps

        with engine.begin() as conn:
            for table in (failures, steps, runs):
                conn.execute(table.delete())
        return
    for table in ("steps", "runs", "step_keys", "run_keys"):
        store.conn.command(f"TRUNCATE TABLE {table}")  # type: ignore[attr-defined]


def stored_failures(store: Store, run_id: str) -> list[tuple[object, ...]]:
    """The run's stored failure rows as (failure_type, failure_code, step_seq, message): none or one."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        from agenttracer.store.sql.schema.tables import failures

        with engine.connect() as conn:
            query = sa.select(failures.c.failure_type, failures.c.failure_code, failures.c.step_seq, failures.c.message)
            return [tuple(r) for r in conn.execute(query.where(failures.c.run_id == run_id))]
    run = stored_run(store, run_id)
    if run["failure_type"] is None:
        return []
    return [(run["failure_type"], run["failure_code"], run["failure_step_seq"], run["failure_message"])]


def stored_key_rows(store: Store) -> list[dict[str, Any]]:
    """Every stored row of the API keys table (ClickHouse: the newest version of each key)."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        from agenttracer.store.sql.schema.tables import api_keys

        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(sa.select(api_keys)).mappings()]
    return store.conn.query("SELECT * FROM api_keys FINAL").dicts()  # type: ignore[attr-defined, no-any-return]


def verify(store: Store, key: str) -> Verification:
    """The key's verification as the apps get it."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        from agenttracer.store.sql.keys import verify_key

        with engine.connect() as conn:
            return verify_key(conn, key)
    from agenttracer.store.clickhouse.keys import verify_key as verify_clickhouse

    return verify_clickhouse(store.conn, key)  # type: ignore[attr-defined]


def step_copies(store: Store) -> list[tuple[str, int, int]]:
    """(run_id, seq, how many rows hold it) for every stored step: physical copies, before any merge
    (ClickHouse: live rows, tombstoned ones left out)."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        from agenttracer.store.sql.schema.tables import steps

        with engine.connect() as conn:
            query = sa.select(steps.c.run_id, steps.c.seq, sa.func.count()).group_by(steps.c.run_id, steps.c.seq)
            return [(r[0], r[1], r[2]) for r in conn.execute(query)]
    rows = store.conn.query(  # type: ignore[attr-defined]
        "SELECT run_id, seq, count() FROM steps WHERE is_deleted = 0 GROUP BY run_id, seq"
    ).rows
    return [(r[0], r[1], r[2]) for r in rows]


def step_counts(store: Store) -> dict[str, int]:
    """Every stored run's ``step_count``, by run_id."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        from agenttracer.store.sql.schema.tables import runs

        with engine.connect() as conn:
            return dict(conn.execute(sa.select(runs.c.run_id, runs.c.step_count)).all())  # type: ignore[arg-type]
    rows = store.conn.query(  # type: ignore[attr-defined]
        "SELECT run_id, step_count, is_deleted FROM runs ORDER BY version DESC LIMIT 1 BY run_id"
    ).rows
    return {r[0]: r[1] for r in rows if not r[2]}
