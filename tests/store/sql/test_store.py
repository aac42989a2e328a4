"""SqlStore: the store interface on SQLite and PostgreSQL, used as the apps and the CLI use it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from agenttracer.store import open_store
from agenttracer.store.filters import RunFilters
from agenttracer.store.interface import Stopped, Store
from agenttracer.store.keys import KeyStatus
from agenttracer.store.records import WriteReport
from agenttracer.store.run_state import Incoming
from tests.support.events import full_run, new_run_id
from tests.support.incoming import incoming as converted

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def incoming(events: list[dict[str, Any]]) -> list[Incoming]:
    return converted(events, NOW)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.close()


def test_a_migrated_store_is_at_the_newest_revision_and_migrating_again_changes_nothing(empty_db_url: str) -> None:
    store = open_store(empty_db_url)
    try:
        assert store.current_revision() is None
        store.migrate()
        head = store.current_revision()
        assert head is not None
        store.migrate()
        assert store.current_revision() == head
    finally:
        store.close()


def test_a_batch_written_through_the_store_reads_back_through_a_reader(store: Store, backend: str) -> None:
    run_id = new_run_id()
    report = WriteReport()
    outcomes = store.write_batch(incoming(full_run(run_id, steps=3)), now=NOW, report=report)
    assert [o.status for o in outcomes] == ["accepted"] * len(outcomes)
    assert run_id in report.identities
    replay = store.write_batch(incoming(full_run(run_id, steps=3)), now=NOW)
    assert {o.status for o in replay} == {"duplicate"}
    assert store.backend == backend
    with store.reader() as reader:
        reader.ping()
        page, cursor = reader.list_runs(RunFilters(), limit=10)
        assert [r["run_id"] for r in page] == [run_id] and cursor is None
        detail = reader.get_run(run_id, steps_limit=10)
        assert detail is not None and [s["seq"] for s in detail["steps"]] == [1, 2, 3]
        assert reader.get_run(run_id, steps_limit=10, projects=("elsewhere",)) is None
        assert reader.run_stats(RunFilters()).total_runs == 1
        assert [a["agent_id"] for a in reader.list_agents()] == [page[0]["agent_id"]]


def test_keys_and_projects_through_the_store(store: Store) -> None:
    store.create_project("team-a", retention_days=30)
    assert store.set_retention("team-a", None) is True
    assert store.set_retention("nope", 5) is False
    with pytest.raises(ValueError, match="no such project: missing"):
        store.create_key("read", projects=["missing"])
    info, key = store.create_key("read", "dash", projects=["team-a"])
    assert info.projects == ("team-a",) and key.startswith("at_read_")
    with store.reader() as reader:
        assert reader.any_key_exists()
        verified = reader.verify_key(key)
        assert verified.status is KeyStatus.VALID and verified.key is not None
        assert verified.key.key_id == info.key_id
        assert [p.slug for p in reader.list_projects()] == ["default", "team-a"]
        assert reader.project_slugs() == ("default", "team-a")
    assert store.revoke_key(info.key_id) is True
    with store.reader() as reader:
        assert reader.verify_key(key).status is KeyStatus.REVOKED
    assert [k.key_id for k in store.list_keys(include_revoked=False)] == []
    deleted = store.delete_project("team-a")
    assert deleted is not None and deleted.runs == 0
    assert store.delete_project("team-a") is None


def test_jobs_through_the_store(store: Store) -> None:
    run_id = new_run_id()
    events = full_run(run_id, steps=2)
    store.write_batch(incoming([e for e in events if e["type"] != "run_end"]), now=NOW)
    swept = store.sweep(timedelta(seconds=1), now=datetime.now(timezone.utc) + timedelta(hours=1))
    assert [c.run_id for c in swept.closed] == [run_id]
    assert store.refresh_rollups(settle=timedelta(0)).skipped is False
    counted = store.prune(timedelta(days=1), dry_run=True, now=datetime.now(timezone.utc) + timedelta(days=400))
    assert counted.runs == 1 and counted.dry_run
    pruned = store.prune(timedelta(days=1), now=datetime.now(timezone.utc) + timedelta(days=400))
    assert pruned.runs == 1
    with store.reader() as reader:
        assert reader.get_run(run_id, steps_limit=10) is None


def test_a_read_only_store_refuses_writes_and_says_retry_later(db_url: str) -> None:
    store = open_store(db_url, readonly=True)
    try:
        with pytest.raises(store.database_errors) as caught:
            store.probe_write()
        assert store.cannot_write(caught.value)
    finally:
        store.close()


def test_a_reader_asked_to_stop_before_it_starts_reads_nothing(store: Store) -> None:
    with pytest.raises(Stopped), store.reader(should_stop=lambda: True):
        pytest.fail("the session must not start")


SLOW = {  # a statement that would run for minutes
    "postgresql": "SELECT pg_sleep(60)",
    "sqlite": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c",
}


def test_cancel_stops_a_running_statement_from_another_thread(store: Store, backend: str) -> None:
    with store.reader() as reader:
        conn: Any = reader.conn  # type: ignore[attr-defined]
        threading.Timer(0.3, reader.cancel).start()
        started = time.monotonic()
        with pytest.raises(store.database_errors):
            conn.exec_driver_sql(SLOW[backend]).all()
        assert time.monotonic() - started < 10


def test_should_stop_interrupts_a_running_sqlite_statement(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{(tmp_path / 'a.db').as_posix()}")
    deadline = time.monotonic() + 0.3
    try:
        with store.reader(should_stop=lambda: time.monotonic() > deadline) as reader:
            conn: Any = reader.conn  # type: ignore[attr-defined]
            with pytest.raises(store.database_errors):
                conn.exec_driver_sql(SLOW["sqlite"]).all()
            assert time.monotonic() - deadline < 5
    finally:
        store.close()
