"""``run_keys`` and ``step_keys`` (schema v0006): every sorting key a run's rows and its steps' rows have had,
by ``run_id``, which the run detail and the run-id prefix lookup read the runs and steps tables by. Every
write records the keys, a moved key keeps both, retention and project deletion take the keys with the
rows, the migration backfills a database written before it, a copy carries them, and until it is
recorded the reads go by run id alone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from agenttracer.store import open_store
from agenttracer.store.clickhouse.read.runs import get_run, runs_with_prefix
from agenttracer.store.clickhouse.schema.migrate import current_revision, upgrade
from agenttracer.store.clickhouse.store import ClickHouseStore
from agenttracer.store.clickhouse.transfer import ClickHouseTransfer
from tests.support.db import drop_chdb_database, new_chdb_url
from tests.support.events import new_run_id, run_end, run_start, stamp, step
from tests.support.incoming import incoming

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def write(store: ClickHouseStore, events: list[dict[str, Any]], project: str = "default") -> None:
    items = incoming(events, NOW)
    assert {o.status for o in store.write_batch(items, now=NOW, project=project)} == {"accepted"}


def add_run(store: ClickHouseStore, started: datetime, project: str = "default") -> str:
    run_id = new_run_id()
    write(store, [run_start(run_id, started_at=stamp(started)),
                  step(run_id, 1, started_at=stamp(started), ended_at=stamp(started + timedelta(seconds=1))),
                  run_end(run_id, ended_at=stamp(started + timedelta(seconds=2)))], project)
    return run_id


def keys(store: ClickHouseStore, run_id: str) -> set[tuple[str, str, datetime]]:
    rows = store.conn.query("SELECT project, agent_id, started_at FROM run_keys FINAL WHERE run_id = {r:String}",
                            {"r": run_id}).rows
    return {(p, a, s.astimezone(timezone.utc)) for p, a, s in rows}



def step_keys(store: ClickHouseStore, run_id: str) -> set[tuple[str, str, datetime]]:
    rows = store.conn.query("SELECT project, agent_id, hour FROM step_keys FINAL WHERE run_id = {r:String}",
                            {"r": run_id}).rows
    return {(p, a, h.astimezone(timezone.utc)) for p, a, h in rows}


def test_a_run_written_in_pieces_keeps_every_key_it_had_and_reads_as_its_newest_version(
        store: ClickHouseStore) -> None:
    run_id = new_run_id()
    started = NOW - timedelta(hours=1)
    # A step first: the run is a placeholder under no agent, dated by the step; its start then moves it.
    write(store, [step(run_id, 1, started_at=stamp(started + timedelta(seconds=5)),
                       ended_at=stamp(started + timedelta(seconds=6)))])
    write(store, [run_start(run_id, started_at=stamp(started)), run_end(run_id, ended_at=stamp(NOW))])
    assert keys(store, run_id) == {("default", "", started + timedelta(seconds=5)),
                                   ("default", "support-agent", started)}
    # The step moved under the agent when it became known: its tombstone stays under the old key.
    hour = started.replace(minute=0, second=0, microsecond=0)
    assert step_keys(store, run_id) == {("default", "", hour), ("default", "support-agent", hour)}
    got = get_run(store.conn, run_id, steps_limit=10)
    assert got is not None
    assert (got["run"]["agent_id"], got["run"]["started_at"], got["run"]["status"]) == (
        "support-agent", started, "success")
    assert [s["seq"] for s in got["steps"]] == [1]


def test_until_the_migration_is_recorded_detail_and_prefix_read_by_run_id(store: ClickHouseStore) -> None:
    run_id = add_run(store, NOW - timedelta(hours=2))
    want = get_run(store.conn, run_id, steps_limit=10)
    assert want is not None and len(want["steps"]) == 1
    # The key tables mid-backfill: empty, the migration not recorded yet.
    for table in ("run_keys", "step_keys"):
        store.conn.command(f"TRUNCATE TABLE {table}")
    # Recorded: the (emptied) key tables are trusted.
    assert get_run(store.conn, run_id, steps_limit=10) is None and runs_with_prefix(store.conn, run_id[:4], 5) == []
    store.conn.command("ALTER TABLE schema_migrations DELETE WHERE number = 6 SETTINGS mutations_sync = 1")
    assert get_run(store.conn, run_id, steps_limit=10) == want
    assert runs_with_prefix(store.conn, run_id[:4], 5) == [run_id]
    assert get_run(store.conn, new_run_id(), steps_limit=10) is None


def test_retention_and_project_deletion_take_the_runs_keys(store: ClickHouseStore) -> None:
    store.create_project("other")
    old, older = add_run(store, NOW - timedelta(days=40)), add_run(store, NOW - timedelta(days=400))
    kept = add_run(store, NOW - timedelta(days=1))
    elsewhere = add_run(store, NOW - timedelta(days=1), project="other")
    assert store.prune(timedelta(days=30), now=NOW).runs == 2
    for gone in (old, older):
        assert keys(store, gone) == step_keys(store, gone) == set()
    for run_id in (kept, elsewhere):
        assert keys(store, run_id) and step_keys(store, run_id)
    assert store.delete_project("other") is not None
    assert keys(store, elsewhere) == step_keys(store, elsewhere) == set()
    assert keys(store, kept) and step_keys(store, kept)


def test_v0006_backfills_the_keys_of_runs_written_before_it(store: ClickHouseStore) -> None:
    runs = [add_run(store, NOW - timedelta(days=d)) for d in (1, 35, 70)]
    for view, table in (("run_keys_of_runs", "run_keys"), ("step_keys_of_steps", "step_keys")):
        store.conn.command(f"DROP VIEW {view}")
        store.conn.command(f"DROP TABLE {table}")
    store.conn.command("ALTER TABLE schema_migrations DELETE WHERE number >= 6 SETTINGS mutations_sync = 1")
    assert current_revision(store.conn) == "v0005_daily_rollups"
    assert upgrade(store.conn)[0] == 6
    for run_id in runs:
        assert len(keys(store, run_id)) == len(step_keys(store, run_id)) == 1
    later = add_run(store, NOW)
    assert len(keys(store, later)) == len(step_keys(store, later)) == 1


def test_a_copied_run_has_its_keys_in_the_copy(store: ClickHouseStore) -> None:
    run_id = add_run(store, NOW - timedelta(days=3))
    url = new_chdb_url()
    copy = open_store(url)
    assert isinstance(copy, ClickHouseStore) and copy.conn.database != store.conn.database
    try:
        copy.migrate()
        page = ClickHouseTransfer(store.conn).export_runs(None, 10)
        ClickHouseTransfer(copy.conn).import_runs(page.runs)
        assert keys(copy, run_id) == keys(store, run_id) and step_keys(copy, run_id) == step_keys(store, run_id)
        assert get_run(copy.conn, run_id, steps_limit=10) == get_run(store.conn, run_id, steps_limit=10)
    finally:
        copy.close()
        drop_chdb_database(url)

