"""Retention and project deletion through the store interface, on every store (SQLite, PostgreSQL,
ClickHouse): whole runs go with their steps and failure, only the project asked for, nothing newer;
a dry run counts without deleting; a run whose start never arrived is aged by when it was ingested; the
background worker prunes and stops, and keeps each project's own retention with no deployment default;
deleting a project unbinds and revokes its keys."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from agenttracer.store.interface import Store
from agenttracer.store.keys import KeyStatus
from tests.support.events import new_run_id, run_end, run_start, step
from tests.support.incoming import incoming
from tests.support.stored import step_counts, stored_run, table_counts, verify

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def write(store: Store, events: list[dict[str, Any]], *, now: datetime = NOW, project: str = "default") -> None:
    items = incoming(events, now)
    assert {o.status for o in store.write_batch(items, now=now, project=project)} == {"accepted"}


def add_run(store: Store, started: datetime, *, project: str = "default", failed: bool = False,
            clock: datetime = NOW) -> str:
    run_id = new_run_id()
    stamp = started.isoformat().replace("+00:00", "Z")
    later = (started + timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    events: list[dict[str, Any]] = [
        run_start(run_id, started_at=stamp),
        *(step(run_id, i, started_at=stamp, ended_at=later, latency_ms=5000.0) for i in (1, 2, 3)),
        run_end(run_id, ended_at=later, status="failure" if failed else "success"),
    ]
    if failed:
        events.append({"type": "failure", "run_id": run_id, "failure_type": "tool", "failure_code": "timeout",
                       "step_seq": 1, "recorded_at": later})  # fmt: skip
    write(store, events, project=project, now=clock)
    return run_id


def test_prune_takes_whole_old_runs_of_the_project_asked_and_nothing_newer(store: Store) -> None:
    store.create_project("other")
    old = [add_run(store, NOW - timedelta(days=40 + i), failed=i == 0) for i in range(3)]
    add_run(store, NOW - timedelta(days=29), failed=True)
    add_run(store, NOW - timedelta(days=50), project="other")
    assert len(old) == 3 and table_counts(store) == (5, 15, 2)

    dry = store.prune(timedelta(days=30), dry_run=True, now=NOW, project="default")
    assert (dry.runs, dry.steps, dry.failures, dry.dry_run) == (3, 9, 1, True)
    assert table_counts(store) == (5, 15, 2)

    done = store.prune(timedelta(days=30), now=NOW, project="default")
    assert (done.runs, done.steps, done.failures, done.cutoff) == (3, 9, 1, NOW - timedelta(days=30))
    assert table_counts(store) == (2, 6, 1)  # the newer run of default and the old run of `other`
    again = store.prune(timedelta(days=30), now=NOW, project="default")
    assert (again.runs, again.steps) == (0, 0)


def test_a_prune_of_every_project_takes_each_ones_old_runs(store: Store) -> None:
    store.create_project("other")
    add_run(store, NOW - timedelta(days=400))
    add_run(store, NOW - timedelta(days=60), project="other")
    keep = add_run(store, NOW - timedelta(days=1), project="other")
    result = store.prune(timedelta(days=30), now=NOW)
    assert (result.runs, result.steps) == (2, 6)
    assert table_counts(store) == (1, 3, 0) and keep


def test_a_prune_of_every_project_takes_the_steps_an_old_run_has_in_a_newer_month(store: Store) -> None:
    # The run starts in September and steps on into October; October also holds a run newer than the
    # cut-off, so only September is wholly old (ClickHouse drops its monthly partitions whole).
    straddling = new_run_id()
    start, stepped = datetime(2026, 9, 30, 23, 59, 50, tzinfo=timezone.utc), datetime(2026, 10, 1, 0, 0, 5,
                                                                                       tzinfo=timezone.utc)
    stamp, later = (t.isoformat().replace("+00:00", "Z") for t in (start, stepped))
    write(store, [run_start(straddling, started_at=stamp),
                  step(straddling, 1, started_at=stamp, ended_at=stamp, latency_ms=0.0),
                  step(straddling, 2, started_at=later, ended_at=later, latency_ms=0.0),
                  run_end(straddling, ended_at=later, status="success")])
    keep = add_run(store, datetime(2026, 10, 30, tzinfo=timezone.utc))
    assert table_counts(store) == (2, 5, 0)

    result = store.prune(timedelta(days=30), now=NOW)
    assert (result.runs, result.steps) == (1, 2)
    assert table_counts(store) == (1, 3, 0)
    assert set(step_counts(store)) == {keep}


def test_a_run_whose_start_never_arrived_is_aged_by_when_it_was_ingested(store: Store) -> None:
    made = {}
    for name, ingested in (("stale", NOW - timedelta(days=60)), ("recent", NOW - timedelta(days=2))):
        run_id = made[name] = new_run_id()  # only a step: the run's start is unknown
        stamp = ingested.isoformat().replace("+00:00", "Z")
        write(store, [step(run_id, 1, started_at=stamp, ended_at=stamp, latency_ms=0.0)], now=ingested)
    assert table_counts(store) == (2, 2, 0)
    result = store.prune(timedelta(days=30), now=NOW)
    assert (result.runs, result.steps) == (1, 1)
    assert set(step_counts(store)) == {made["recent"]}
    nothing = store.prune(timedelta(days=30), now=NOW)
    assert (nothing.runs, nothing.steps, nothing.failures) == (0, 0, 0)


def test_the_worker_prunes_in_the_background_and_stops_promptly(store: Store) -> None:
    now = datetime.now(timezone.utc)  # the worker prunes against the clock
    add_run(store, now - timedelta(days=10), clock=now)
    keep = add_run(store, now - timedelta(days=1), clock=now)
    workers = store.start_workers(retention_days=5, rollup_interval_s=0, rollup_settle_s=0,
                                  rollup_live_interval_s=0, run_timeout_s=0)  # fmt: skip
    try:
        assert workers.retention is not None and workers.sweep is None
        waited = threading.Event()
        for _ in range(200):  # the first pass comes about a second after the start
            if workers.retention.deleted.get("runs"):
                break
            waited.wait(0.05)
        assert workers.retention.deleted.get("runs") == 1
    finally:
        workers.stop()
    assert set(step_counts(store)) == {keep}
    assert not any(t.name == "agenttracer-retention" for t in threading.enumerate())


def test_without_any_retention_the_worker_runs_and_keeps_everything(store: Store) -> None:
    now = datetime.now(timezone.utc)
    old = add_run(store, now - timedelta(days=4000), clock=now)
    for days in (None, 0):
        workers = store.start_workers(retention_days=days, rollup_interval_s=0, rollup_settle_s=0,
                                      rollup_live_interval_s=0, run_timeout_s=0)  # fmt: skip
        worker: Any = workers.retention
        try:
            assert worker is not None
            waited = threading.Event()
            for _ in range(200):  # the first pass comes about a second after the start
                if worker.passes:
                    break
                waited.wait(0.05)
            assert worker.passes >= 1 and worker.last_result is not None and worker.last_result.runs == 0
        finally:
            workers.stop()
    assert set(step_counts(store)) == {old}


def test_deleting_a_project_takes_its_runs_and_revokes_keys_bound_only_to_it(store: Store) -> None:
    store.create_project("doomed")
    store.create_project("kept")
    add_run(store, NOW - timedelta(days=1), project="doomed", failed=True)
    add_run(store, NOW - timedelta(days=1), project="kept")
    _, only_doomed = store.create_key("read", projects=["doomed"])
    _, both = store.create_key("read", projects=["doomed", "kept"])

    deleted = store.delete_project("doomed")

    assert deleted is not None and (deleted.runs, deleted.steps, deleted.failures) == (1, 3, 1)
    assert deleted.revoked_keys == 1
    assert table_counts(store) == (1, 3, 0)
    assert verify(store, only_doomed).status is KeyStatus.REVOKED
    survivor = verify(store, both)
    assert survivor.status is KeyStatus.VALID and survivor.key is not None and survivor.key.projects == ("kept",)
    assert store.delete_project("doomed") is None
    assert store.create_project("doomed").slug == "doomed"  # the slug is free again


def test_the_workers_prune_a_project_by_its_own_retention_with_no_deployment_default(store: Store) -> None:
    now = datetime.now(timezone.utc)
    store.create_project("short", retention_days=7)
    gone = add_run(store, now - timedelta(days=30), project="short", clock=now)
    kept_new = add_run(store, now - timedelta(days=1), project="short", clock=now)
    kept_default = add_run(store, now - timedelta(days=3000), clock=now)  # `default` has no retention: kept for ever
    workers = store.start_workers(retention_days=None, rollup_interval_s=0, rollup_settle_s=0,
                                  rollup_live_interval_s=0, run_timeout_s=0)
    try:
        worker = workers.retention
        assert worker is not None
        for _ in range(600):  # the first pass starts a second after the workers
            if worker.passes:
                break
            threading.Event().wait(0.05)
        assert worker.passes >= 1 and worker.last_result is not None and worker.last_result.runs == 1
    finally:
        workers.stop()
    assert table_counts(store) == (2, 6, 0)
    assert stored_run(store, kept_new) and stored_run(store, kept_default) and gone not in (kept_new, kept_default)
