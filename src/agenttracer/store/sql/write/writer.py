"""The only code that writes telemetry: one validated, privacy-scrubbed batch per transaction.

``write_batch(engine, events)`` stores a batch and says, per event, whether it was ``accepted``, a
``duplicate`` of something already stored, or ``rejected`` (a conflict with what is stored). It works
the same on SQLite and PostgreSQL, in a fixed number of statements per batch (never one round trip
per event):

1. insert a placeholder row for every run the batch touches (``ON CONFLICT DO NOTHING``), so that a
   step, failure or run_end arriving before its run_start is kept;
2. read those runs back (``FOR UPDATE`` on PostgreSQL, in run_id order so concurrent batches cannot
   deadlock) and, if needed, their stored failures;
3. decide run_start / failure / run_end outcomes in Python against the stored state;
4. read which of the batch's steps are already stored (exact, since the runs are locked), then insert
   the new steps and failures in bulk (``ON CONFLICT DO NOTHING`` as a safety net);
5. update the touched runs, recomputing step_count / error_step_count / retry_count from the steps
   table, inside the same transaction, so the counters are exact under replays and any arrival order.

The rules that decide each run-level event live in ``store/run_state.py``.

A batch is written into one project (the caller's: the ingest key's, or what a keyless client named).
A run belongs to the project its row was created in; every event of a run stored under another
project is ``rejected`` (field ``run_id``) and changes nothing there, so a run id can never be
written from two projects.

What needs no stored state is decided before the transaction (``_Plan``): in-batch repeats of a
step (the first occurrence is the one stored, any later one is a ``duplicate`` whatever it says, as
``ON CONFLICT DO NOTHING`` would have it), each run's earliest step time and the steps' DBAPI rows.

The transaction itself (the SQLite write lock, retries of deadlocks, driver errors as SQLAlchemy's) is
``transaction.py``'s, shared with the OTLP writer; every transaction starts with a write, so SQLite's
busy timeout applies instead of an immediate "database is locked".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from agenttracer.model import DEFAULT_PROJECT
from agenttracer.store.records import FOREIGN_RUN_RULE, WriteReport
from agenttracer.store.run_state import (
    FAILURE,
    RUN_END,
    RUN_START,
    STEP,
    Incoming,
    Outcome,
    RunState,
    apply_failure,
    apply_run_end,
    apply_run_start,
    current_start,
    other_source_rule,
    reopen_abandoned,
)
from agenttracer.store.sql.dialect import insert
from agenttracer.store.sql.lock import write_lock
from agenttracer.store.sql.rollup.marks import mark_dirty
from agenttracer.store.sql.schema.tables import SOURCE_SDK, failures, rollup_dirty
from agenttracer.store.sql.write.abandon import settle_reopened
from agenttracer.store.sql.write.sql import Statements
from agenttracer.store.sql.write.transaction import driver_helpers, write_transaction

# Processing order inside one run: the start first, the end last, so in-batch checks see both.
_KIND_ORDER = {RUN_START: 0, STEP: 1, FAILURE: 1, RUN_END: 2}

_PROBE_MARK = datetime(1970, 1, 1, tzinfo=timezone.utc)


def probe_write(engine: sa.Engine) -> None:
    """Raise the database's own error if it refuses writes right now (read-only, permissions, locked);
    stores nothing (the probe row is rolled back). Taken in turn with the batches on SQLite."""
    with write_lock(engine), engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(sa.insert(rollup_dirty).values(hour=_PROBE_MARK))
        finally:
            transaction.rollback()


def write_batch(
    engine: sa.Engine,
    events: Sequence[Incoming],
    *,
    now: datetime | None = None,
    report: WriteReport | None = None,
    project: str = DEFAULT_PROJECT,
) -> list[Outcome]:
    """Store ``events`` in ``project`` in one transaction and return one Outcome per event, in input order.

    Raises SQLAlchemy's OperationalError/DBAPIError when the database is unavailable; nothing is
    stored then. ``report``, when given, is filled in (see ``WriteReport``).
    """
    if not events:
        return []
    now = now or datetime.now(timezone.utc)
    # Everything that needs no database happens before the lock (SQLite's single writer): grouping
    # by run, in-batch repeats of a step, each run's earliest step time and the DBAPI row of every
    # step, so the critical section is only the SQL and the decisions that need the stored state.
    plan = _Plan(events, engine.dialect)

    def conflict_proof() -> bool:
        # A step collided with a stored one after all: redo the batch the conflict-proof way. Not counted
        # as a failed attempt (it can happen once), so a batch that already used its retries on deadlocks
        # still gets its conflict-proof attempt.
        if plan.safe_steps:
            return False
        plan.safe_steps = True
        return True

    def count_retry() -> None:
        if report is not None:
            report.retries += 1

    decided = write_transaction(engine, lambda conn: _write(conn, plan, now, project), on_retry=count_retry,
                                on_unique_violation=conflict_proof)
    # The step outcomes were decided as lists of event indices; their objects are built here, after
    # the lock is released.
    outcomes, accepted, stored, states, foreign = decided
    if report is not None:
        report.identities = {
            run_id: (s.row["agent_id"], s.row["agent_version"], s.row["environment"]) for run_id, s in states.items()
        }
    outcomes += [Outcome(index, "accepted") for index in accepted]
    outcomes += [Outcome(index, "duplicate") for index in stored]
    if foreign:
        outcomes += [
            Outcome(ev.index, "rejected", "run_id", foreign[ev.run_id]) for ev in events if ev.run_id in foreign
        ]
        refused = {ev.index for ev in events if ev.run_id in foreign}
        outcomes += [Outcome(i, "duplicate") for i in plan.repeats if i not in refused]
    else:
        outcomes += [Outcome(index, "duplicate") for index in plan.repeats]
    outcomes.sort(key=_by_index)
    return outcomes


def _by_index(outcome: Outcome) -> int:
    return outcome.index


# ... and the runs none of whose events may be applied here, each with the rule it breaks.
_Decided = tuple[list[Outcome], list[int], list[int], dict[str, RunState], dict[str, str]]


class _RunSteps:
    """One run's steps in a batch, first occurrence of each seq only: event indices, seqs and rows."""

    __slots__ = ("first", "indices", "rows", "seqs")

    def __init__(self) -> None:
        self.indices: list[int] = []
        self.seqs: list[int] = []
        self.rows: list[tuple[Any, ...]] = []
        # seq -> position in the lists above, to tell an in-batch repeat from a new seq.
        self.first: dict[int, int] = {}


class _Plan:
    """Everything about a batch that needs no database, computed once outside the lock and reused by
    a retried attempt (``_write`` never changes it):

    - the runs in run_id order (the lock order on PostgreSQL), each with its run-level events in
      processing order (run_start first, run_end last, so in-batch checks see both);
    - each run's steps: the first occurrence (lowest event index) of every seq with its DBAPI row;
      every later occurrence in the batch is a ``duplicate`` whatever it says (``repeats``), exactly
      as the database's ``ON CONFLICT DO NOTHING`` would treat it;
    - each run's earliest step time, repeats included: all the run rules need of the steps' times
      (``current_start`` is a minimum), instead of one entry per step.
    """

    def __init__(self, events: Sequence[Incoming], dialect: sa.Dialect) -> None:
        rows, self.sql = driver_helpers(dialect)
        row = rows.row
        step_time: dict[str, datetime] = {}
        steps_of: dict[str, _RunSteps] = {}
        others: dict[str, list[Incoming]] = {}
        repeats: list[int] = []
        for ev in events:
            run_id = ev.run_id
            if ev.kind != STEP:
                others.setdefault(run_id, []).append(ev)
                continue
            run_steps = steps_of.get(run_id)
            if run_steps is None:
                run_steps = steps_of[run_id] = _RunSteps()
                step_time[run_id] = ev.time
            elif ev.time < step_time[run_id]:
                step_time[run_id] = ev.time
            seq = ev.values["seq"]
            pos = run_steps.first.get(seq)
            if pos is None:
                run_steps.first[seq] = len(run_steps.indices)
                run_steps.indices.append(ev.index)
                run_steps.seqs.append(seq)
                run_steps.rows.append(row(ev.values, ev.wire_started, ev.wire_ended))
            elif ev.index < run_steps.indices[pos]:
                # Out of index order: the earlier event is the one stored, the later one the repeat.
                repeats.append(run_steps.indices[pos])
                run_steps.indices[pos] = ev.index
                run_steps.rows[pos] = row(ev.values, ev.wire_started, ev.wire_ended)
            else:
                repeats.append(ev.index)
        self.repeats = repeats
        self.step_time = step_time
        self.run_ids = sorted(others.keys() | steps_of.keys())
        # In run_id order, so the new steps go into the primary key's B-tree in order.
        self.steps = {run_id: steps_of[run_id] for run_id in self.run_ids if run_id in steps_of}
        self.run_events = {
            run_id: sorted(evs, key=lambda e: (_KIND_ORDER[e.kind], e.index)) for run_id, evs in others.items()
        }
        # The placeholder's started_at: the earliest time of any event of the run in this batch.
        self.starts: list[tuple[str, datetime]] = []
        for run_id in self.run_ids:
            times = [ev.time for ev in others.get(run_id, ())]
            if run_id in step_time:
                times.append(step_time[run_id])
            self.starts.append((run_id, min(times)))
        self.failure_runs = [
            run_id for run_id in self.run_ids if any(e.kind == FAILURE for e in others.get(run_id, ()))
        ]
        # Steps by the conflict-proof path (only after a unique violation, which should never happen).
        self.safe_steps = False


def _write(conn: sa.Connection, plan: _Plan, now: datetime, project: str) -> _Decided:
    """The batch's transaction. Returns the run-level events' outcomes, the event indices of the
    steps accepted and of those already stored (their Outcome objects are built after the lock), and
    the runs refused because they belong to another project."""
    run_ids = plan.run_ids
    sql = plan.sql

    # 1. Make sure every touched run has a row (placeholders for out-of-order arrivals).
    created = sql.insert_placeholders(conn, plan.starts, now, project, SOURCE_SDK)

    # 2. Read the stored state, locked against concurrent batches on PostgreSQL. A run stored under
    # another project, or created over OTLP, is left exactly as it is: none of its events is applied.
    states = _load_runs(conn, sql, run_ids, created)
    foreign = {
        run_id: FOREIGN_RUN_RULE if state.row["project"] != project else other_source_rule(SOURCE_SDK)
        for run_id, state in states.items()
        if state.row["project"] != project or state.row["source"] != SOURCE_SDK
    }
    failure_runs = plan.failure_runs
    if foreign:
        for run_id in foreign:
            del states[run_id]
        run_ids = [run_id for run_id in run_ids if run_id not in foreign]
        failure_runs = [run_id for run_id in failure_runs if run_id not in foreign]
    if failure_runs:
        for row in conn.execute(sa.select(failures).where(failures.c.run_id.in_(failure_runs))).mappings():
            state = states[row["run_id"]]
            if not state.sweep_failure:  # the sweep's failure gives way to the agent's own
                state.failure = dict(row)

    # 3. Decide run-level events against the stored state. The steps' earliest time joins the run's
    # times where the steps come in processing order: after the run_starts, before failures and ends.
    outcomes: list[Outcome] = []
    step_time = plan.step_time
    for run_id in run_ids:
        state = states[run_id]
        pending = step_time.get(run_id)
        for ev in plan.run_events.get(run_id, ()):
            kind = ev.kind
            if kind == RUN_START:
                outcomes.append(apply_run_start(state, ev))
                continue
            if pending is not None:
                state.times.append(pending)
                pending = None
            if kind == FAILURE:
                outcomes.append(apply_failure(state, ev))
            else:
                outcomes.append(apply_run_end(state, ev))
        if pending is not None:
            state.times.append(pending)

    # 4. Steps and failures. The runs are locked (PostgreSQL row locks, SQLite's single writer), so
    # the steps already stored for them cannot change under us: one indexed read tells replays from
    # new steps (a run created by this batch has none), and the new ones go in by the dialect's bulk
    # path. The in-batch repeats were set aside before the lock.
    accepted: list[int] = []
    stored_dups: list[int] = []
    if plan.steps:
        stored_for = sorted(plan.steps.keys() - created - foreign.keys())
        stored = sql.stored_steps(conn, stored_for) if stored_for else set()
        new_rows: list[tuple[Any, ...]] = []
        for run_id, run_steps in plan.steps.items():
            if run_id in foreign:
                continue
            if run_id in created or not stored:
                accepted += run_steps.indices
                new_rows += run_steps.rows
                states[run_id].new_steps = True
                continue
            for index, seq, step_row in zip(run_steps.indices, run_steps.seqs, run_steps.rows, strict=True):
                if (run_id, seq) in stored:
                    stored_dups.append(index)
                else:
                    accepted.append(index)
                    new_rows.append(step_row)
                    states[run_id].new_steps = True
        if new_rows:
            sql.insert_steps(conn, new_rows, safe=plan.safe_steps)
    settle_reopened(conn, [s for s in states.values() if s.dirty or s.new_steps])
    new_failures = [s.new_failure for s in states.values() if s.new_failure is not None]
    if new_failures:
        conn.execute(insert(conn, failures).on_conflict_do_nothing(index_elements=["run_id"]), new_failures)

    # 5. Update the runs: run-level fields from Python, counters recomputed from the steps table; the
    # hours of the changed runs are marked for the rollup refresher in the same transaction.
    mark_runs_dirty(conn, states.values())
    _update_runs(conn, sql, states, now)
    return outcomes, accepted, stored_dups, states, foreign


def _load_runs(conn: sa.Connection, sql: Statements, run_ids: list[str], created: set[str]) -> dict[str, RunState]:
    states: dict[str, RunState] = {}
    for data in sql.load_runs(conn, run_ids):
        run_id = data["run_id"]
        data["meta"] = dict(data["meta"] or {})
        if run_id in created:
            # The placeholder's started_at is only a bound from this batch: recompute it below.
            fallback, data["started_at"] = data["started_at"], None
            states[run_id] = RunState(data, dirty=True, fallback_start=fallback)
        else:
            states[run_id] = state = RunState(data)
            reopen_abandoned(state)
    return states


def _update_runs(conn: sa.Connection, sql: Statements, states: dict[str, RunState], now: datetime) -> None:
    rows: list[tuple[Any, ...]] = []
    for run_id, state in states.items():
        start = current_start(state) or state.fallback_start
        row = state.row
        if start is not None and start != row["started_at"]:
            row["started_at"] = start
            state.dirty = True
        if not (state.dirty or state.new_steps):
            continue
        ended = row["ended_at"]
        duration = (ended - row["started_at"]).total_seconds() * 1000.0 if ended and row["started_at"] else None
        values = {
            "agent_id": row["agent_id"],
            "agent_version": row["agent_version"],
            "environment": row["environment"],
            "status": row["status"],
            "started_at": row["started_at"],
            "ended_at": ended,
            "duration_ms": duration,
            "failure_type": row["failure_type"],
            "failure_code": row["failure_code"],
            "meta": row["meta"],
            "meta_removed": row["meta_removed"] or 0,
            "updated_at": now,
        }
        rows.append(sql.update_row(run_id, values))
    if rows:
        # Counters are recomputed from the steps table, so they stay exact under replays and any order.
        sql.update_runs(conn, rows, {run_id for run_id, s in states.items() if s.new_steps})


def mark_runs_dirty(conn: sa.Connection, states: Iterable[RunState]) -> None:
    """The writer's one call, before it updates the runs: mark the hours of every run the batch changes.

    Both the stored start and the start the run will have (a placeholder's start moves earlier when
    an earlier event arrives), so the run's old hour loses it and its new hour gains it.
    """
    hours: list[datetime] = []
    for state in states:
        old = state.row["started_at"]
        new = current_start(state) or state.fallback_start
        if state.dirty or state.new_steps or new != old:
            if old is not None:
                hours.append(old)
            if new is not None and new != old:
                hours.append(new)
    mark_dirty(conn, hours)
