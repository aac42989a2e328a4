"""The shipped migrations build the schema that store/sql/schema/tables.py describes, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from agenttracer.store.sql.schema import tables
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import current_revision, head_revision, is_known_revision, upgrade


def test_upgrade_reaches_head_and_is_repeatable(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    upgrade(engine)
    upgrade(engine)  # a second upgrade is a no-op, as on every `agenttracer up`
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_known_revisions_are_the_shipped_ones_only() -> None:
    head = head_revision()
    assert head is not None and is_known_revision(head)
    assert is_known_revision("0001")
    # A revision applied by a newer checkout is not one of ours: callers must not try to upgrade from it.
    assert not is_known_revision("9999_from_the_future")


def test_migrated_columns_match_tables_module(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    for table in tables.metadata.sorted_tables:
        live = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(live) == set(table.c.keys()), table.name
        for column in table.c:
            live_type = live[column.name]["type"]
            if isinstance(column.type, sa.String):
                assert getattr(live_type, "length", None) == column.type.length, (table.name, column.name)
            assert live[column.name]["nullable"] == column.nullable, (table.name, column.name)


def test_migrated_indexes_match_tables_module(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    for table in tables.metadata.sorted_tables:
        live = {ix["name"] for ix in inspector.get_indexes(table.name)}
        declared = {ix.name for ix in table.indexes}
        assert declared <= live, (table.name, declared - live)


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA busy_timeout")).scalar() == 10_000
    engine.dispose()


def test_readonly_engine_refuses_writes(db_url: str) -> None:
    ro = make_engine(db_url, readonly=True)
    with ro.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.runs)).scalar() == 0
    try:
        with ro.begin() as conn:
            conn.execute(sa.text("DELETE FROM runs"))
    except sa.exc.DBAPIError as exc:
        assert "read" in str(exc.orig).lower()
    else:
        raise AssertionError("the read-only engine accepted a write")
    finally:
        ro.dispose()


def test_upgrading_to_self_time_rollups_drops_the_old_rollups_for_a_rebuild(empty_db_url: str) -> None:
    # Rollups made before migration 0007 summed latencies (a parent counted again in its children); they
    # cannot be turned into self time, so the upgrade empties them and resets the watermarks.
    engine = make_engine(empty_db_url)
    upgrade(engine, "0006")
    hour = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    key = {"project": "default", "grain": "hour", "level": 0, "bucket_start": hour, "agent_id": "",
           "agent_version": "", "environment": ""}
    with engine.begin() as conn:
        old_steps = sa.Table("rollup_steps", sa.MetaData(), autoload_with=conn)
        old_runs, state = tables.rollup_runs, tables.rollup_state  # the same at 0006
        conn.execute(old_steps.insert().values(**key, step_type="llm", name="gpt", steps=1, errors=0, retries=0,
                                               latency_ms=5.0, finished_latency_ms=5.0, retry_latency_ms=0.0,
                                               latency_hist=[]))
        conn.execute(old_runs.insert().values(**key, runs=1, running=0, success=1, failure=0, partial=0, steps=1,
                                              retry_steps=0, runs_with_retries=0, run_time_ms=5.0,
                                              last_started_at=hour, duration_hist=[]))
        conn.execute(state.update().values(rolled_until=hour + timedelta(hours=1)))
        conn.execute(state.insert().values(id=2, rolled_until=hour + timedelta(hours=1, seconds=10)))
    upgrade(engine)
    with engine.connect() as conn:
        for table in (tables.rollup_steps, tables.rollup_runs, tables.rollup_failures, tables.rollup_dirty):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0, table.name
        assert conn.execute(sa.select(tables.rollup_state.c.id, tables.rollup_state.c.rolled_until)).all() == [
            (1, None)]
    engine.dispose()
