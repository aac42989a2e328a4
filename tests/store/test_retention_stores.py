"""Retention and project deletion through the store interface, on every store (SQLite, PostgreSQL,
ClickHouse): whole runs go with their steps and failure, only the project asked for, nothing newer;
a dry run counts without deleting; deleting a project unbinds and revokes its keys."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from agenttracer.server.ingest.events import convert_event
from agenttracer.store.interface import Store
from agenttracer.store.keys import KeyStatus
from tests.support.events import new_run_id, run_end, run_start, step
from tests.support.stored import table_counts, verify

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def add_run(store: Store, started: datetime, *, project: str = "default", failed: bool = False) -> str:
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
    items = []
    for i, raw in enumerate(events):
        result, item = convert_event(i, raw, NOW)
        assert item is not None, result["errors"]
        items.append(item)
    assert {o.status for o in store.write_batch(items, now=NOW, project=project)} == {"accepted"}
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
