"""The Transfer contract (store/transfer.py) and `agenttracer copy`'s resumable walk (cli/copy_runs.py), on
every store: export pages every run once in the store's natural order, import stores each run once however often it
is given, projects and key hashes travel, and a copy interrupted mid-way continues from its checkpoint."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from agenttracer.cli.copy import open_transfer
from agenttracer.cli.copy_runs import CopyState, compare_runs, copy_runs, verify
from agenttracer.server.ingest.events import convert_event
from agenttracer.store import open_store
from agenttracer.store.keys import KeyStatus
from agenttracer.store.run_state import Incoming
from agenttracer.store.sql.keys import create_key, verify_key
from agenttracer.store.sql.projects import create_project
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from agenttracer.store.sql.schema.tables import runs
from agenttracer.store.sql.transfer import SqlTransfer
from agenttracer.store.transfer import ExportedPage, Imported, StoredRun, Transfer
from tests.support.db import STORE_BACKENDS, drop_chdb_database, drop_pg_schema, new_chdb_url, new_pg_schema_url
from tests.support.events import new_run_id, run_end, run_start, step
from tests.support.rundata import T0, RunSpec, StepSpec, insert_runs, sample_runs


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store of each kind: SQLite, PostgreSQL, ClickHouse (embedded)."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    elif request.param == "postgresql":
        url, schema = new_pg_schema_url()
        yield url
        drop_pg_schema(schema)
    else:
        url = new_chdb_url()
        yield url
        drop_chdb_database(url)


@pytest.fixture
def store(store_url: str) -> Iterator[Transfer]:
    """The store under test, migrated and empty."""
    with open_transfer(store_url) as transfer:
        yield transfer


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A SQLite store the sample is made in (rows written directly, as tests/support/rundata.py does)."""
    eng = make_engine(f"sqlite:///{(tmp_path / 'sample.db').as_posix()}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sample(engine: sa.Engine) -> list[StoredRun]:
    """25 stored runs as a SQLite/PostgreSQL store exports them: the sample fleet, 15 more, and a run
    that only a failure event has reached (no identity, no start time, still running)."""
    extra = [RunSpec("bulk-agent", "v1", "production", T0 + timedelta(minutes=i), "success",
                     [StepSpec(1, "tool", "lookup", 0, 5.5 + i)]) for i in range(15)]
    insert_runs(engine, sample_runs() + extra)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(runs.insert().values(run_id=str(uuid.uuid4()), status="running", failure_type="model",
                                          failure_code="timeout", ingested_at=now, updated_at=now))
    every = SqlTransfer(engine).export_runs(None, 1000).runs
    assert len(every) == 26
    return every


@pytest.fixture
def source(store: Transfer, sample: list[StoredRun]) -> Transfer:
    """The store under test, holding the sample."""
    assert store.import_runs(sample).runs == len(sample)
    return store


@pytest.fixture
def destination(tmp_path: Path) -> Iterator[SqlTransfer]:
    engine = make_engine(f"sqlite:///{(tmp_path / 'destination.db').as_posix()}")
    upgrade(engine)
    yield SqlTransfer(engine)
    engine.dispose()


def walk(transfer: Transfer, page: int) -> list[StoredRun]:
    """Every run the store exports, page by page, in its export order."""
    out: list[StoredRun] = []
    after: str | None = None
    while batch := (exported := transfer.export_runs(after, page)).runs:
        assert len(batch) <= page and exported.after != after
        out += batch
        after = exported.after
    return out


def by_id(runs: list[StoredRun]) -> list[StoredRun]:
    return sorted(runs, key=lambda item: item.run.run_id)


def test_export_pages_walk_every_run_once_with_its_steps(source: Transfer) -> None:
    every = walk(source, 4)
    ids = [item.run.run_id for item in every]
    assert len(ids) == 26 == len(set(ids))
    assert walk(source, 1000) == every  # the page size changes nothing
    failed = [item for item in every if item.run.failure_type == "tool"]
    assert failed and all(item.failure is not None and item.failure.failure_code == "timeout" for item in failed)
    retried = failed[0]
    assert [s.seq for s in retried.steps] == sorted(s.seq for s in retried.steps)
    assert any(s.retry_of_seq is not None for s in retried.steps)


def test_runs_come_back_exactly_as_they_were_imported(source: Transfer, sample: list[StoredRun]) -> None:
    """Field by field — statuses, verdicts, counters, metadata, a run without identity or start."""
    assert by_id(walk(source, 7)) == sample
    assert source.runs_by_id([sample[5].run.run_id, "no-such-run"]) == [sample[5]]
    counts = source.counts()
    assert counts["default"].runs == 26 and counts["default"].steps == sum(len(i.steps) for i in sample)
    assert counts["default"].failures == sum(i.failure is not None for i in sample) > 0


def test_importing_a_page_twice_stores_it_once(store: Transfer, sample: list[StoredRun]) -> None:
    page = sample[:10]
    first = store.import_runs(page)
    again = store.import_runs(page + page[:2])  # a repeat inside the page too
    assert (first.runs, first.skipped) == (10, [])
    assert again.runs == 0 and len(again.skipped) == 12
    assert sum(c.runs for c in store.counts().values()) == 10
    assert store.counts()["default"].steps == sum(len(item.steps) for item in page)
    assert compare_runs(page, store.runs_by_id([item.run.run_id for item in page])) == []


def test_projects_and_key_hashes_travel_and_the_same_key_opens_the_copy(
    engine: sa.Engine, store: Transfer, destination: SqlTransfer
) -> None:
    create_project(engine, "team-b", retention_days=7)
    _, key = create_key(engine, "read", projects=["team-b"])
    access = SqlTransfer(engine).export_access()
    store.import_access(access)
    store.import_access(access)  # again: nothing changes, nothing fails
    copied = store.export_access()
    assert copied.keys == access.keys
    # A store may start with a `default` project of its own; the others arrive as they were.
    assert [p for p in copied.projects if p.slug != "default"] == [p for p in access.projects if p.slug != "default"]
    destination.import_access(copied)  # and on into another store, where the key is checked
    with destination._engine.connect() as conn:
        verification = verify_key(conn, key)
    assert verification.status is KeyStatus.VALID
    assert verification.key is not None and verification.key.projects == ("team-b",)


class Crash(Exception):
    pass


class CrashAfter:
    """A destination that stores ``pages`` pages and then dies after storing the next one, before the
    copy could write its checkpoint: the worst moment to be interrupted."""

    def __init__(self, inner: Transfer, pages: int) -> None:
        self.inner, self.pages = inner, pages

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def import_runs(self, runs: Sequence[StoredRun]) -> Imported:
        done = self.inner.import_runs(runs)
        self.pages -= 1
        if self.pages < 0:
            raise Crash
        return done


class Recording:
    def __init__(self, inner: Transfer) -> None:
        self.inner, self.afters = inner, list[str | None]()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def export_runs(self, after: str | None, limit: int) -> ExportedPage:
        self.afters.append(after)
        return self.inner.export_runs(after, limit)


def test_an_interrupted_copy_continues_from_its_checkpoint_and_stores_nothing_twice(
    source: Transfer, destination: Transfer, tmp_path: Path
) -> None:
    state = tmp_path / "copy.json"
    with pytest.raises(Crash):
        copy_runs(source, CrashAfter(destination, 2), state, page_runs=5)  # type: ignore[arg-type]
    checkpoint = CopyState.load(state)
    assert checkpoint.walked == 10 and checkpoint.after is not None

    recording = Recording(source)
    report = copy_runs(recording, destination, state, page_runs=5)  # type: ignore[arg-type]
    assert recording.afters[0] == checkpoint.after  # continued, did not start over
    assert report.skipped == 5  # only the page stored at the crash came again, and was stored once
    assert report.copied_runs == 11 and report.walked == 26
    assert not state.exists()  # finished: a later run walks everything again
    assert verify(source, destination, [item.run.run_id for item in walk(source, 100)]) == []


def test_verify_names_what_differs(source: Transfer, destination: SqlTransfer) -> None:
    every = walk(source, 100)
    destination.import_runs(every)
    victim = next(item.run.run_id for item in every if item.steps)
    with destination._engine.begin() as conn:
        conn.execute(sa.text("UPDATE steps SET latency_ms = latency_ms + 1 WHERE run_id = :r"), {"r": victim})
    found = verify(source, destination, [victim])
    assert found and all(m.where == f"run {victim}" for m in found)
    assert any(m.what.endswith(".latency_ms") for m in found)


def test_a_run_whose_start_arrived_after_its_steps_is_exported_once_as_it_is_now(store_url: str) -> None:
    """On ClickHouse such a run has an older version elsewhere in the sorting key (no agent, no start):
    the export takes it once, where its newest version is, with every step."""
    late, whole = new_run_id(), new_run_id()
    now = datetime.now(timezone.utc)

    def incoming(raw: list[dict[str, object]]) -> list[Incoming]:
        return [item for i, e in enumerate(raw) if (item := convert_event(i, e, now)[1]) is not None]

    opened = open_store(store_url)
    try:
        opened.migrate()
        opened.write_batch(incoming([step(late, 1), step(late, 2), run_start(whole), step(whole, 1)]))
        opened.write_batch(incoming([run_start(late, agent_id="late-agent"), run_end(late), run_end(whole)]))
        every = walk(opened.transfer(), 1)
    finally:
        opened.close()
    assert sorted(item.run.run_id for item in every) == sorted([late, whole])
    got = next(item for item in every if item.run.run_id == late)
    assert got.run.agent_id == "late-agent" and got.run.started_at is not None
    assert [s.seq for s in got.steps] == [1, 2]
