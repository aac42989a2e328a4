"""SDK batches (``POST /v1/ingest``) into ClickHouse: the SQL store's outcomes without transactions.

``write_batch(conn, events, project=...)`` returns, per event, ``accepted`` / ``duplicate`` /
``rejected`` by exactly the rules of the SQL writer (``store/sql/write/writer.py``): the run-level
rules are the same pure code (``run_state``), replays are stored once, events may arrive in any order,
a run belongs to one project and one source. How, with no transaction and no row lock:

1. read the newest stored version of every touched run (``LIMIT 1 BY run_id``), in any project, and
   the stored steps of those runs (``LIMIT 1 BY run_id, seq``); the project's row only when none of
   those runs is stored in it (``ensure_project``);
2. decide every event in Python against that state (``run_state``), exactly as the SQL writer does;
3. insert the new step rows, then ONE new version of each changed run (counters recomputed from the
   stored plus the new steps), each insert synchronous and with its own deduplication token: when
   ``write_batch`` returns, everything it accepted is stored (a kill -9 afterwards loses nothing).
   Batches writing at the same moment share those inserts (``commit.py``: group commit; a batch
   announces itself there before it reads, so a round waits briefly for the batches still reading).

Steps go in before their run's new version, so a write interrupted between the two leaves the run
row behind its steps, never ahead: the client, which got no answer, sends the batch again; its steps
are then duplicates and the run's row is written with counters recounted from the stored steps.

Concurrency: batches of this process that touch the same run take turns (a lock per run_id).
Two PROCESSES writing events of the same run at the same instant each decide against what they read;
the newest run version wins and the counters are recounted by the run's next write. The SDK sends one
run's batches one after another, so this needs a client retrying while its first attempt still runs.

Sorting keys hold the run's identity and start (``runs``: project, agent_id, started_at; ``steps``:
project, agent_id, hour): when a placeholder run (a step came before its run_start) learns its agent or
an earlier start, the old-key rows get tombstones (``is_deleted`` = 1) in the same inserts, and its
steps are re-inserted under the agent (schema/migrations/v0001_base.py says how readers dedupe).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from agenttracer.model import DEFAULT_PROJECT
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.projects import ensure_project
from agenttracer.store.clickhouse.write import commit
from agenttracer.store.clickhouse.write.rows import (
    STEP_COLUMNS,
    failure_of,
    newest_runs,
    next_version,
    run_tombstone,
    run_values,
    step_values,
)
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

__all__ = ["probe_write", "write_batch"]

SOURCE_SDK = "sdk"
_KIND_ORDER = {RUN_START: 0, STEP: 1, FAILURE: 1, RUN_END: 2}
class _RunLocks:
    """One lock per run_id in use, made on demand and dropped when its last holder leaves: batches that
    share no run never wait for each other."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: dict[str, tuple[threading.Lock, int]] = {}

    def _take(self, run_ids: list[str]) -> list[threading.Lock]:
        with self._mutex:
            locks = []
            for run_id in run_ids:
                lock, users = self._held.get(run_id) or (threading.Lock(), 0)
                self._held[run_id] = (lock, users + 1)
                locks.append(lock)
            return locks

    def _leave(self, run_ids: list[str]) -> None:
        with self._mutex:
            for run_id in run_ids:
                lock, users = self._held[run_id]
                if users == 1:
                    del self._held[run_id]
                else:
                    self._held[run_id] = (lock, users - 1)

    @contextmanager
    def hold(self, run_ids: Sequence[str]) -> Iterator[None]:
        ordered = sorted(set(run_ids))  # one order for everyone: batches cannot deadlock
        locks = self._take(ordered)
        taken: list[threading.Lock] = []
        try:
            for lock in locks:
                lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()
            self._leave(ordered)


_RUN_LOCKS = _RunLocks()


def run_locks(run_ids: Sequence[str]) -> AbstractContextManager[None]:
    """This process's turn on ``run_ids``: batches touching a common run take turns, others run at once."""
    return _RUN_LOCKS.hold(run_ids)


def probe_write(conn: Connection) -> None:
    """Raise if the database refuses writes (a read-only user or server); stores nothing."""
    readonly = conn.query("SELECT toUInt8(getSetting('readonly'))").rows[0][0]
    if readonly:
        from agenttracer.store.clickhouse.connection import ClickHouseError

        raise ClickHouseError("the ClickHouse user is read-only (readonly setting)", 164)


@dataclass(slots=True)
class _RunSteps:
    """One run's steps in a batch, first occurrence of each seq only."""

    indices: list[int] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)
    first: dict[int, int] = field(default_factory=dict)  # seq -> position


class _Plan:
    """What needs no stored state (as in the SQL writer): runs in run_id order with their run-level
    events in processing order, each run's steps (first occurrence per seq; later ones are
    ``repeats``), each run's earliest event time."""

    def __init__(self, events: Sequence[Incoming]) -> None:
        steps_of: dict[str, _RunSteps] = {}
        others: dict[str, list[Incoming]] = {}
        step_time: dict[str, datetime] = {}
        repeats: list[int] = []
        for ev in events:
            if ev.kind != STEP:
                others.setdefault(ev.run_id, []).append(ev)
                continue
            run_steps = steps_of.setdefault(ev.run_id, _RunSteps())
            known = step_time.get(ev.run_id)
            if known is None or ev.time < known:
                step_time[ev.run_id] = ev.time
            seq = ev.values["seq"]
            pos = run_steps.first.get(seq)
            values = {**ev.values, "run_id": ev.run_id}
            if pos is None:
                run_steps.first[seq] = len(run_steps.indices)
                run_steps.indices.append(ev.index)
                run_steps.values.append(values)
            elif ev.index < run_steps.indices[pos]:
                repeats.append(run_steps.indices[pos])
                run_steps.indices[pos], run_steps.values[pos] = ev.index, values
            else:
                repeats.append(ev.index)
        self.repeats = repeats
        self.step_time = step_time
        self.run_ids = sorted(others.keys() | steps_of.keys())
        self.steps = steps_of
        self.run_events = {
            run_id: sorted(evs, key=lambda e: (_KIND_ORDER[e.kind], e.index)) for run_id, evs in others.items()
        }
        self.earliest: dict[str, datetime] = {}
        for run_id in self.run_ids:
            times = [ev.time for ev in others.get(run_id, ())]
            if run_id in step_time:
                times.append(step_time[run_id])
            self.earliest[run_id] = min(times)


def write_batch(
    conn: Connection,
    events: Sequence[Incoming],
    *,
    now: datetime | None = None,
    report: WriteReport | None = None,
    project: str = DEFAULT_PROJECT,
) -> list[Outcome]:
    """Store ``events`` in ``project``; one Outcome per event, in input order. Raises ClickHouseError
    when the database fails; what was not acknowledged may then be partly stored, and sending the
    batch again stores the rest and reports the stored part as duplicates."""
    if not events:
        return []
    now = now or datetime.now(timezone.utc)
    plan = _Plan(events)
    with run_locks(plan.run_ids), commit.coming(conn) as ticket:
        outcomes, accepted, stored, states, foreign = _write(conn, plan, now, project, ticket)
    if report is not None:
        report.identities = {
            run_id: (s.row["agent_id"], s.row["agent_version"], s.row["environment"]) for run_id, s in states.items()
        }
    outcomes += [Outcome(index, "accepted") for index in accepted]
    outcomes += [Outcome(index, "duplicate") for index in stored]
    refused = {ev.index for ev in events if ev.run_id in foreign}
    outcomes += [Outcome(ev.index, "rejected", "run_id", foreign[ev.run_id]) for ev in events if ev.index in refused]
    outcomes += [Outcome(i, "duplicate") for i in plan.repeats if i not in refused]
    outcomes.sort(key=lambda o: o.index)
    return outcomes


_Decided = tuple[list[Outcome], list[int], list[int], dict[str, RunState], dict[str, str]]


def _write(conn: Connection, plan: _Plan, now: datetime, project: str, ticket: commit.Ticket) -> _Decided:
    states, created = _load(conn, plan, now, project)
    ensure_project(conn, project, now,
                   has_runs=any(s.row["project"] == project for r, s in states.items() if r not in created))
    foreign = {
        run_id: FOREIGN_RUN_RULE if s.row["project"] != project else other_source_rule(SOURCE_SDK)
        for run_id, s in states.items()
        if s.row["project"] != project or s.row["source"] != SOURCE_SDK
    }
    for run_id in foreign:
        del states[run_id]

    outcomes: list[Outcome] = []
    for run_id, state in states.items():
        pending = plan.step_time.get(run_id)
        for ev in plan.run_events.get(run_id, ()):
            if ev.kind == RUN_START:
                outcomes.append(apply_run_start(state, ev))
                continue
            if pending is not None:
                state.times.append(pending)
                pending = None
            outcomes.append(apply_failure(state, ev) if ev.kind == FAILURE else apply_run_end(state, ev))
        if pending is not None:
            state.times.append(pending)

    accepted: list[int] = []
    duplicates: list[int] = []
    step_rows: list[tuple[Any, ...]] = []
    # A run with no stored row is read too: a write cut short between its two inserts leaves its steps
    # without it, and the client's retry must find them as duplicates.
    stored = _stored_steps(conn, project, [s for r, s in states.items() if r in plan.steps], plan.step_time)
    version = next_version()
    for run_id, run_steps in plan.steps.items():
        if run_id not in states:
            continue
        state = states[run_id]
        known = stored.setdefault(run_id, {})
        identity = (state.row["agent_id"], state.row["agent_version"], state.row["environment"])
        for index, values in zip(run_steps.indices, run_steps.values, strict=True):
            if values["seq"] in known:
                duplicates.append(index)
                continue
            accepted.append(index)
            known[values["seq"]] = (values["status"], values.get("attempt") or 1)
            step_rows.append(step_values(project, identity, values, version))
            state.new_steps = True
    step_rows += _rekeyed_steps(conn, project, states, created)
    commit.insert(conn, step_rows, _run_rows(states, stored, now), ticket)
    return outcomes, accepted, duplicates, states, foreign


def _load(conn: Connection, plan: _Plan, now: datetime, project: str) -> tuple[dict[str, RunState], set[str]]:
    """Each touched run's stored state (a new placeholder for a run not stored yet)."""
    stored = newest_runs(conn, plan.run_ids)
    states: dict[str, RunState] = {}
    created: set[str] = set()
    for run_id in plan.run_ids:
        row = stored.get(run_id)
        if row is None:
            created.add(run_id)
            states[run_id] = RunState(
                _placeholder(run_id, project, now), dirty=True, fallback_start=plan.earliest[run_id]
            )
            continue
        states[run_id] = state = RunState(row)
        reopen_abandoned(state)
        if not state.sweep_failure:  # the sweep's failure gives way to the agent's own
            state.failure = failure_of(row)
    return states, created


def _placeholder(run_id: str, project: str, now: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id, "project": project, "agent_id": None, "agent_version": None, "environment": None,
        "status": "running", "started_at": None, "ended_at": None, "step_count": 0, "error_step_count": 0,
        "retry_count": 0, "failure_type": None, "failure_code": None, "failure_step_seq": None,
        "failure_message": None, "failure_recorded_at": None, "meta": {}, "meta_removed": 0, "ingested_at": now,
        "updated_at": now, "root_span_id": None, "root_error": None, "source": SOURCE_SDK, "abandoned": False,
        "_key": None,
    }  # fmt: skip


StoredSteps = dict[str, dict[int, tuple[str, int]]]


def _stored_steps(
    conn: Connection, project: str, states: list[RunState], step_time: dict[str, datetime]
) -> StoredSteps:
    """run_id -> seq -> (status, attempt) of the steps stored for these runs, searched from the earliest
    of their starts and of the batch's steps (``step_time``: a run with no stored row has no start)."""
    if not states:
        return {}
    since = min(t for s in states for t in (s.row["started_at"], step_time.get(s.row["run_id"])) if t is not None)
    result = conn.query(
        "SELECT run_id, seq, status, attempt, is_deleted FROM steps"
        " WHERE project = {project:String} AND run_id IN {ids:Array(String)} AND started_at >= {since:DateTime64(6)}"
        " ORDER BY version DESC LIMIT 1 BY run_id, seq",
        {"project": project, "ids": sorted(s.row["run_id"] for s in states), "since": since},
    )
    found: StoredSteps = {}
    for run_id, seq, status, attempt, deleted in result.rows:
        if not deleted:
            found.setdefault(run_id, {})[seq] = (status, attempt)
    return found


def _rekeyed_steps(
    conn: Connection, project: str, states: dict[str, RunState], created: set[str]
) -> list[tuple[Any, ...]]:
    """Stored steps of runs that learn their agent in this batch, moved under it: a tombstone for each
    old row and the row again with the run's identity."""
    moving = [
        s for run_id, s in states.items() if run_id not in created and s.row["_key"][0] == "" and s.row["agent_id"]
    ]
    if not moving:
        return []
    result = conn.query(
        f"SELECT {', '.join(STEP_COLUMNS)} FROM steps"
        " WHERE project = {project:String} AND agent_id = '' AND run_id IN {ids:Array(String)}"
        " ORDER BY version DESC LIMIT 1 BY run_id, seq",
        {"project": project, "ids": sorted(s.row["run_id"] for s in moving)},
    )
    tombstone, version = next_version(), next_version()
    rows = []
    for step in result.dicts():
        if step["is_deleted"]:
            continue
        row = states[step["run_id"]].row
        rows.append(step_values(project, ("", "", ""), step, tombstone, deleted=1))
        rows.append(step_values(project, (row["agent_id"], row["agent_version"], row["environment"]), step, version))
    return rows


def _run_rows(states: dict[str, RunState], steps: StoredSteps, now: datetime) -> list[tuple[Any, ...]]:
    """One new version of every run the batch changed (and a tombstone where its key moved)."""
    rows: list[tuple[Any, ...]] = []
    tombstone, version = next_version(), next_version()
    for run_id, state in states.items():
        row = state.row
        start = current_start(state) or state.fallback_start
        if start is not None and start != row["started_at"]:
            row["started_at"] = start
            state.dirty = True
        recount = _counters(steps.get(run_id)) if run_id in steps else None
        stale = recount is not None and recount != (row["step_count"], row["error_step_count"], row["retry_count"])
        if not (state.dirty or state.new_steps or (stale and not state.reopened)):
            continue
        if recount is not None:
            row["step_count"], row["error_step_count"], row["retry_count"] = recount
        _settle_failure(state)
        old = run_tombstone(row, tombstone)
        if old is not None:
            rows.append(old)
        rows.append(run_values(row, version, now))
    return rows


def _counters(steps: dict[int, tuple[str, int]] | None) -> tuple[int, int, int]:
    values = (steps or {}).values()
    return len(values), sum(status == "error" for status, _ in values), sum(attempt > 1 for _, attempt in values)


def _settle_failure(state: RunState) -> None:
    """The failure columns of the run's new version: a new failure's, or none once the sweep's is
    forgotten (``reopen_abandoned``); a reopened run is not abandoned any more."""
    row = state.row
    if state.reopened:
        row["abandoned"] = False
        if state.sweep_failure:
            row["failure_step_seq"] = row["failure_message"] = row["failure_recorded_at"] = None
    new = state.new_failure
    if new is not None:
        row["failure_step_seq"] = new.get("step_seq")
        row["failure_message"] = new.get("message")
        row["failure_recorded_at"] = new.get("recorded_at")
