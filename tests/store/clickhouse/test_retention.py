"""Retention on ClickHouse where it differs from the SQL stores: a prune of every project drops whole old
monthly partitions first and deletes the rest after, so a prune interrupted between the two must leave
work the next prune finds and finishes (the steps an old run has in a newer month, and its keys)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agenttracer.store.clickhouse.store import ClickHouseStore
from agenttracer.store.clickhouse.write import retention
from tests.support.events import new_run_id, run_end, run_start, stamp, step
from tests.support.incoming import incoming

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def _count(store: ClickHouseStore, table: str, run_id: str) -> int:
    return int(store.conn.query(f"SELECT count() FROM {table} WHERE run_id = {{r:String}}", {"r": run_id}).rows[0][0])


def test_a_prune_interrupted_after_dropping_partitions_is_finished_by_the_next(store: ClickHouseStore) -> None:
    # Started 30 September, stepping on into October; October also holds a newer run, so only September
    # is dropped whole and the old run's October step must go by DELETE.
    straddling, kept = new_run_id(), new_run_id()
    start, stepped = datetime(2026, 9, 30, 23, 59, 50, tzinfo=timezone.utc), datetime(2026, 10, 1, 0, 0, 5,
                                                                                       tzinfo=timezone.utc)
    newer = datetime(2026, 10, 30, tzinfo=timezone.utc)
    events = [run_start(straddling, started_at=stamp(start)),
              step(straddling, 1, started_at=stamp(start), ended_at=stamp(start), latency_ms=0.0),
              step(straddling, 2, started_at=stamp(stepped), ended_at=stamp(stepped), latency_ms=0.0),
              run_end(straddling, ended_at=stamp(stepped), status="success"),
              run_start(kept, started_at=stamp(newer)),
              step(kept, 1, started_at=stamp(newer), ended_at=stamp(newer), latency_ms=0.0),
              run_end(kept, ended_at=stamp(newer), status="success")]
    assert {o.status for o in store.write_batch(incoming(events, NOW), now=NOW)} == {"accepted"}

    retention._drop_old_partitions(store.conn, NOW - timedelta(days=30))  # the prune stops right after this
    assert _count(store, "runs", straddling) == 0
    assert _count(store, "steps", straddling) == 1 and _count(store, "run_keys", straddling) == 1

    result = store.prune(timedelta(days=30), now=NOW)
    assert (result.runs, result.steps) == (0, 1)  # its run row went with September; its October step now
    for table in ("steps", "step_keys", "run_keys"):
        assert _count(store, table, straddling) == 0, table
    assert _count(store, "runs", kept) == 1 and _count(store, "steps", kept) == 1
    again = store.prune(timedelta(days=30), now=NOW)
    assert (again.runs, again.steps, again.batches) == (0, 0, 0)
