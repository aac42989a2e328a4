"""The abandonment sweep on every store (SQLite, PostgreSQL, ClickHouse): which runs it closes and how, late
events that settle or reopen a closed run, bounded passes, one close per run however many sweepers run, the
background worker, and stats, compare and the rollups counting the closed runs as failures. Two tests of how
a sweep meets a SQL writer's locks are SQL-only and say so."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.filters import RunFilters
from agenttracer.store.interface import Store
from agenttracer.store.records import Closed, SweepResult
from agenttracer.store.run_state import Outcome
from agenttracer.store.sql.schema.tables import runs
from agenttracer.store.sql.write.abandon import sweep
from agenttracer.store.sql.write.writer import write_batch
from tests.store.test_otlp_write import rec, root
from tests.support.events import T0, failure, new_run_id, run_end, run_start, step, ts
from tests.support.incoming import incoming
from tests.support.stored import stored_failures, stored_run, table_counts

ROOT_SPAN = root()

HOUR = timedelta(hours=1)
QUIET = T0 + timedelta(minutes=2)  # when the runs below last received an event (the server's clock)
NOW = T0 + 3 * HOUR  # when the sweep runs


def write(target: Store | sa.Engine, events: list[dict[str, Any]], at: datetime = QUIET) -> list[Outcome]:
    items = incoming(events, at)
    if isinstance(target, sa.Engine):
        return write_batch(target, items, now=at)
    return target.write_batch(items, now=at)


def started_run(target: Store | sa.Engine, steps: int = 2, at: datetime = QUIET, **identity: str) -> str:
    run_id = new_run_id()
    write(target, [run_start(run_id, **identity), *(step(run_id, i) for i in range(1, steps + 1))], at)
    return run_id


def run_row(target: Store | sa.Engine, run_id: str) -> dict[str, Any]:
    if isinstance(target, sa.Engine):
        with target.connect() as conn:
            return dict(conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().one())
    return stored_run(target, run_id)


def failure_rows(store: Store, run_id: str) -> list[tuple[Any, ...]]:
    return stored_failures(store, run_id)


def verdict(target: Store | sa.Engine, run_id: str) -> tuple[Any, ...]:
    row = run_row(target, run_id)
    return row["status"], row["failure_type"], row["failure_code"], bool(row["abandoned"])


ABANDONED = ("failure", "orchestration", "abandoned", True)


def test_a_quiet_running_run_is_closed_at_its_last_event_and_nothing_else_is(store: Store) -> None:
    quiet = started_run(store, steps=3)
    recent = started_run(store, at=NOW - timedelta(minutes=10))
    finished = new_run_id()
    write(store, [run_start(finished), step(finished, 1), run_end(finished)])

    result = store.sweep(HOUR, now=NOW)

    assert [c.run_id for c in result.closed] == [quiet]
    assert result.cutoff == NOW - HOUR
    assert verdict(store, quiet) == ABANDONED
    row = run_row(store, quiet)
    # Its end is its last event (step 3 ended at ts(3.5)), not the time of the sweep.
    assert row["ended_at"] == T0 + timedelta(seconds=3.5) and row["duration_ms"] == 3500.0
    assert failure_rows(store, quiet) == [("orchestration", "abandoned", None, None)]
    assert verdict(store, recent) == ("running", None, None, False)
    assert verdict(store, finished) == ("success", None, None, False)
    assert failure_rows(store, recent) == failure_rows(store, finished) == []


def test_a_run_with_only_its_start_ends_where_it_started(store: Store) -> None:
    run_id = started_run(store, steps=0)
    store.sweep(HOUR, now=NOW)
    row = run_row(store, run_id)
    assert verdict(store, run_id) == ABANDONED
    assert (row["ended_at"], row["duration_ms"]) == (T0, 0.0)


def test_a_failure_the_agent_recorded_stays_the_runs_one_failure(store: Store) -> None:
    run_id = new_run_id()
    write(store, [run_start(run_id), step(run_id, 1, status="error", failure_code="timeout"),
                   failure(run_id, step_seq=1, recorded_at=ts(50))])

    closed = store.sweep(HOUR, now=NOW).closed

    assert closed == [Closed(run_id, "default", "support-agent", "v1.0.0", "production", "tool", "timeout")]
    assert verdict(store, run_id) == ("failure", "tool", "timeout", True)
    assert run_row(store, run_id)["ended_at"] == T0 + timedelta(seconds=50)  # the failure was the last event
    assert failure_rows(store, run_id) == [("tool", "timeout", 1, None)]


def small_batches(store: Store, batch_size: int, max_batches: int) -> SweepResult:
    """One sweep pass in batches of ``batch_size`` runs (the interface's passes use the shared default size,
    store/records.py's SWEEP_BATCH_SIZE; each backend's sweep takes a smaller one)."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        return sweep(engine, HOUR, now=NOW, batch_size=batch_size, max_batches=max_batches)
    from agenttracer.store.clickhouse.write.abandon import sweep as clickhouse_sweep

    return clickhouse_sweep(store.conn, HOUR, now=NOW, batch_size=batch_size,  # type: ignore[attr-defined]
                            max_batches=max_batches)


def test_a_pass_is_bounded_and_takes_the_quietest_runs_first(store: Store) -> None:
    ids = [started_run(store, steps=1, at=QUIET + timedelta(seconds=i)) for i in range(7)]

    first = small_batches(store, 3, 2)
    assert (first.batches, [c.run_id for c in first.closed]) == (2, ids[:6])
    second = small_batches(store, 3, 2)
    assert (second.batches, [c.run_id for c in second.closed]) == (1, ids[6:])
    assert [c.run_id for c in store.sweep(HOUR, now=NOW).closed] == []  # a restart finds nothing left


def test_concurrent_sweepers_close_each_run_once(store: Store) -> None:
    ids = {started_run(store, steps=1) for _ in range(40)}
    closed: list[list[Closed]] = [[], [], []]
    errors: list[BaseException] = []

    def sweeper(n: int) -> None:
        try:
            closed[n] = small_batches(store, 4, 100).closed
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=sweeper, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    every = [c.run_id for part in closed for c in part]
    assert sorted(every) == sorted(ids)  # each run closed by exactly one sweeper
    assert table_counts(store) == (40, 40, 40)
    assert {verdict(store, run_id) for run_id in ids} == {ABANDONED}


def test_a_late_run_end_replaces_the_abandoned_verdict(store: Store) -> None:
    ok, failed = started_run(store), started_run(store)
    store.sweep(HOUR, now=NOW)
    late = NOW + timedelta(minutes=1)

    assert [o.status for o in write(store, [run_end(ok)], late)] == ["accepted"]
    outcomes = write(store, [failure(failed, failure_type="model", failure_code="rate_limited"),
                              run_end(failed, status="failure")], late)
    assert [o.status for o in outcomes] == ["accepted", "accepted"]

    assert verdict(store, ok) == ("success", None, None, False)
    assert run_row(store, ok)["ended_at"] == T0 + timedelta(seconds=60)
    assert failure_rows(store, ok) == []
    assert verdict(store, failed) == ("failure", "model", "rate_limited", False)
    assert failure_rows(store, failed) == [("model", "rate_limited", None, None)]


def test_a_late_step_reopens_the_run_until_it_ends_or_goes_quiet_again(store: Store) -> None:
    run_id = started_run(store)
    store.sweep(HOUR, now=NOW)
    late = NOW + timedelta(minutes=1)

    assert [o.status for o in write(store, [step(run_id, 3)], late)] == ["accepted"]
    row = run_row(store, run_id)
    assert verdict(store, run_id) == ("running", None, None, False)
    assert (row["ended_at"], row["duration_ms"], row["step_count"]) == (None, None, 3)
    assert failure_rows(store, run_id) == []

    assert store.sweep(HOUR, now=late + timedelta(minutes=30)).closed == []  # not quiet long enough
    assert [c.run_id for c in store.sweep(HOUR, now=late + 2 * HOUR).closed] == [run_id]
    assert verdict(store, run_id) == ABANDONED


def test_a_replay_of_stored_events_leaves_a_closed_run_closed(store: Store) -> None:
    run_id = started_run(store)
    store.sweep(HOUR, now=NOW)
    outcomes = write(store, [run_start(run_id), step(run_id, 1), step(run_id, 2)], NOW + timedelta(minutes=1))
    assert [o.status for o in outcomes] == ["duplicate"] * 3
    assert verdict(store, run_id) == ABANDONED
    assert failure_rows(store, run_id) == [("orchestration", "abandoned", None, None)]


def test_an_otlp_run_without_its_root_is_closed_and_a_late_root_settles_it(store: Store) -> None:
    written_at = datetime.now(timezone.utc)
    span = rec("00000000000000a1", 5, 10)
    store.write_spans([span], written_at - 2 * HOUR)  # the spans' run went quiet two hours ago
    [closed] = store.sweep(HOUR, now=written_at).closed
    assert verdict(store, closed.run_id) == ABANDONED
    assert run_row(store, closed.run_id)["ended_at"] == span.ended_at

    assert store.write_spans([ROOT_SPAN], written_at).accepted == 1
    assert verdict(store, closed.run_id) == ("success", None, None, False)
    assert run_row(store, closed.run_id)["ended_at"] == ROOT_SPAN.ended_at
    assert failure_rows(store, closed.run_id) == []


def test_a_late_span_without_the_root_reopens_an_otlp_run(store: Store) -> None:
    written_at = datetime.now(timezone.utc)
    store.write_spans([rec("00000000000000a1", 5, 10)], written_at - 2 * HOUR)
    [closed] = store.sweep(HOUR, now=written_at).closed
    assert store.write_spans([rec("00000000000000a2", 20, 30)], written_at).accepted == 1
    assert verdict(store, closed.run_id) == ("running", None, None, False)
    assert failure_rows(store, closed.run_id) == []


@pytest.fixture
def rollups_only(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stats on these few runs come from the rollups (the store's exact-path threshold set to 0)."""
    if getattr(store, "engine", None) is not None:
        monkeypatch.setattr("agenttracer.store.sql.read.stats_rollup.EXACT_MAX_RUNS", 0)
    else:
        monkeypatch.setattr("agenttracer.store.clickhouse.read.stats_rollup.EXACT_MAX_RUNS", 0)


def test_stats_from_the_rollups_count_a_closed_run_as_a_failure(store: Store, rollups_only: None) -> None:
    done = new_run_id()
    write(store, [run_start(done), step(done, 1), run_end(done)])
    started_run(store)
    store.refresh_rollups(now=NOW)  # the runs' hour is rolled up while one of them is still running
    with store.reader() as reader:
        before = reader.run_stats(RunFilters(), now=NOW)
    assert before.status_counts.get("running") == 1 and not before.latency_exact

    store.sweep(HOUR, now=NOW)
    store.refresh_rollups(now=NOW)  # the sweep changed the hour: the refresher folds the change in
    with store.reader() as reader:
        after = reader.run_stats(RunFilters(), now=NOW)
    assert (after.total_runs, after.finished_runs) == (2, 2)
    assert after.status_counts.get("running", 0) == 0 and after.status_counts["failure"] == 1
    assert [(f.failure_code, f.count) for f in after.failures_by_code] == [("abandoned", 1)]
    assert [(f.failure_type, f.count) for f in after.failures_by_type] == [("orchestration", 1)]


def test_compare_puts_abandoned_runs_in_the_failure_mix(store: Store) -> None:
    for version in ("v1", "v2"):
        done = new_run_id()
        write(store, [run_start(done, agent_version=version), step(done, 1),
                      run_end(done, agent_version=version)])
    started_run(store, agent_version="v2")
    store.sweep(HOUR, now=NOW)
    with store.reader() as reader:
        result = reader.compare_versions("support-agent", "v1", "v2")
    mix = [(r.failure_type, r.failure_code, r.base_count, r.candidate_count) for r in result.failure_mix]
    assert mix == [("orchestration", "abandoned", 0, 1)]


def test_the_worker_reports_what_it_closed(store: Store) -> None:
    run_id = started_run(store)  # QUIET is long before the real clock: the run is quiet
    seen: list[Closed] = []
    workers = store.start_workers(retention_days=None, rollup_interval_s=0, rollup_settle_s=0,
                                  rollup_live_interval_s=0, run_timeout_s=60)  # fmt: skip
    try:
        assert workers.sweep is not None
        workers.sweep.on_closed = seen.extend  # before its first pass, about a second after the start
        waited = threading.Event()
        for _ in range(200):
            if seen:
                break
            waited.wait(0.05)
        assert [c.run_id for c in seen] == [run_id]
        assert workers.sweep.closed == 1
    finally:
        workers.stop()
    assert verdict(store, run_id) == ABANDONED
    assert not any(t.name == "agenttracer-sweep" for t in threading.enumerate())


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_run_a_writer_holds_is_skipped_not_waited_for_and_stays_open(engine: sa.Engine) -> None:
    """PostgreSQL only: the sweep skips a run whose row another transaction has locked."""
    held, other = started_run(engine), started_run(engine)
    with engine.connect() as writer:
        tx = writer.begin()  # a batch for `held` in flight: its row locked, its last write moving to now
        writer.execute(sa.select(runs.c.run_id).where(runs.c.run_id == held).with_for_update())
        writer.execute(runs.update().where(runs.c.run_id == held).values(updated_at=NOW))
        closed = sweep(engine, HOUR, now=NOW).closed  # returns although `held` is locked
        tx.commit()
    assert [c.run_id for c in closed] == [other]
    assert sweep(engine, HOUR, now=NOW).closed == []  # the write landed: `held` is not quiet any more
    assert verdict(engine, held) == ("running", None, None, False)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_sweep_waiting_for_a_batch_does_not_close_the_run_the_batch_wrote(engine: sa.Engine) -> None:
    """SQLite only: a sweep queued behind SQLite's one writer re-checks the run once it gets the lock."""
    from agenttracer.store.sql.lock import write_lock

    held = started_run(engine)
    done: list[list[Closed]] = []
    with write_lock(engine), engine.begin() as conn:  # a batch for `held` holds SQLite's writer
        conn.execute(runs.update().where(runs.c.run_id == held).values(updated_at=NOW))
        sweeper = threading.Thread(target=lambda: done.append(sweep(engine, HOUR, now=NOW).closed))
        sweeper.start()
        sweeper.join(0.5)
        assert sweeper.is_alive()  # it waits for the writer ...
    sweeper.join(10)
    assert done == [[]]  # ... and its guarded UPDATE sees the run's new last write
    assert verdict(engine, held) == ("running", None, None, False)
