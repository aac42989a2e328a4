"""The OTLP writer: one request's mapped spans into runs, steps and failures, in one transaction.

It stands beside ``store/sql/write/writer.py`` (the SDK's events) and shares its machinery: the one
transaction skeleton (``transaction.py``: the SQLite single-writer lock, retries, driver errors),
placeholder rows and locked reads of the touched runs (``FOR UPDATE`` in run_id order on PostgreSQL),
the same bulk step insert (COPY / multi-row INSERT) and run update, plus the rollup dirty marks.

What differs is identity and order. An SDK step is identified by (run_id, seq) with seq chosen by
the SDK; a span is identified by its span id and gets the next free seq of its run when it arrives,
for good. Its cost is bounded by the request, never by the stored trace (docs/otlp.md, "Work per
request"). Per touched run, under the run's lock:

1. which of the request's span ids are stored already (``duplicate``: changes nothing);
2. what the rule needs of the stored run, read through indexes (``store/sql/write/otlp_stored.py``),
   and the new spans assembled onto it (``store/otlp_assemble.py``): new steps inserted,
   stored steps whose parent arrived or whose retry link changed updated, counters moved by the
   difference;
3. the run settles when its root span arrives: start and end from the root; status and failure by
   the one verdict rule (``agenttracer.verdict``), judged again whenever a later span arrives.
   Before that it is ``running``, started at its earliest span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agenttracer.model import DEFAULT_PROJECT, MAX_SEQ
from agenttracer.store.otlp_assemble import (
    Assembly,
    SpanRecord,
    Stored,
    assemble,
)
from agenttracer.store.otlp_settle import new_spans, settle, step_columns
from agenttracer.store.otlp_settle import report as report_run
from agenttracer.store.records import Written
from agenttracer.store.run_state import RunState, reopen_abandoned
from agenttracer.store.sql.dialect import insert
from agenttracer.store.sql.rollup.marks import mark_dirty
from agenttracer.store.sql.schema.tables import SOURCE_OTLP, failures, runs, steps
from agenttracer.store.sql.write import otlp_stored
from agenttracer.store.sql.write.abandon import settle_reopened
from agenttracer.store.sql.write.transaction import driver_helpers, write_transaction

# Built once (per request they would cost more to build than to run).
_THIS_RUN = runs.c.run_id == sa.bindparam("b_run_id")
_ADD_COUNTS = runs.update().where(_THIS_RUN).values(
    step_count=runs.c.step_count + sa.bindparam("b_steps"),
    error_step_count=runs.c.error_step_count + sa.bindparam("b_errors"),
    retry_count=runs.c.retry_count + sa.bindparam("b_retries"),
)
_ROOTS = runs.update().where(_THIS_RUN).values(root_span_id=sa.bindparam("b_span"), root_error=sa.bindparam("b_error"))
_THIS_STEP = sa.and_(steps.c.run_id == sa.bindparam("b_run_id"), steps.c.seq == sa.bindparam("b_seq"))
_ADOPT = steps.update().where(_THIS_STEP).values(parent_seq=sa.bindparam("b_parent"))
_RELINK = steps.update().where(_THIS_STEP).values(attempt=sa.bindparam("b_attempt"),
                                                  retry_of_seq=sa.bindparam("b_retry_of"))


def write_spans(
    engine: sa.Engine, spans: Sequence[SpanRecord], now: datetime, *, project: str = DEFAULT_PROJECT
) -> Written:
    """Store the spans (grouped into runs by trace) in ``project`` in one transaction. A span whose trace
    is a run of another project is refused: a run id is written from one project only.

    Raises SQLAlchemy's OperationalError/DBAPIError when the database is unavailable; nothing is
    stored then.
    """
    written = Written()
    by_run: dict[str, dict[str, SpanRecord]] = {}
    for span in spans:
        run = by_run.setdefault(span.run_id, {})
        if span.span_id in run:
            written.duplicates += 1  # the same span twice in one request: the first one counts
        else:
            run[span.span_id] = span
    if not by_run:
        return written
    report = Written()

    def attempt(conn: sa.Connection) -> tuple[int, int, int]:
        nonlocal report
        report = Written()  # a transaction run again reports afresh
        return _write(conn, by_run, now, report, project)

    accepted, duplicates, rejected = write_transaction(engine, attempt)
    written.accepted += accepted
    written.duplicates += duplicates
    written.rejected += rejected
    written.identities, written.settled, written.failed, written.steps = (
        report.identities, report.settled, report.failed, report.steps
    )
    written.other_source = report.other_source
    return written


def _write(
    conn: sa.Connection, by_run: dict[str, dict[str, SpanRecord]], now: datetime, report: Written, project: str
) -> tuple[int, int, int]:
    rows_for, sql = driver_helpers(conn.dialect)
    run_ids = sorted(by_run)
    starts = [(run_id, min(s.started_at for s in by_run[run_id].values())) for run_id in run_ids]
    created = sql.insert_placeholders(conn, starts, now, project, SOURCE_OTLP)
    states = {data["run_id"]: RunState(data) for data in sql.load_runs(conn, run_ids)}
    foreign = {run_id for run_id, state in states.items() if state.row["project"] != project}
    for run_id in foreign:
        del states[run_id]
    for data in states.values():
        data.row["meta"] = dict(data.row["meta"] or {})
        reopen_abandoned(data)

    accepted = duplicates = rejected = 0
    new_rows: list[tuple[Any, ...]] = []
    counts: list[tuple[int, int, int, str]] = []
    pending = _Pending()
    for run_id in run_ids:
        if run_id in foreign:
            rejected += len(by_run[run_id])  # a trace id that is another project's run: never written from here
            continue
        state = states[run_id]
        spans = by_run[run_id]
        fresh_run = run_id in created
        if state.row["source"] != SOURCE_OTLP:
            rejected += len(spans)  # a trace id that is an SDK run's id: that run is not ours
            report.other_source += len(spans)
            continue
        known = set() if fresh_run else otlp_stored.stored_span_ids(conn, run_id, list(spans))
        fresh, root = new_spans(spans, known, state.row["root_span_id"])
        duplicates += len(spans) - len(fresh)
        if not fresh:
            continue
        new_steps = [s for s in fresh if s.step_type is not None]
        stored = Stored() if fresh_run else otlp_stored.read_stored(conn, run_id, new_steps)
        if stored.next_seq + len(new_steps) - 1 > MAX_SEQ:
            rejected += len(fresh)  # a run holds at most MAX_SEQ steps (model.py's seq rule)
            continue
        accepted += len(fresh)
        assembly = assemble(new_steps, stored)
        new_rows += [rows_for.row(step_columns(s)) for s in new_steps]
        _update_stored(conn, run_id, assembly)
        retries = sum(s.attempt > 1 for s in new_steps) + assembly.retry_delta
        counts.append((len(new_steps), sum(s.error for s in new_steps), retries, run_id))
        if new_steps:
            state.new_steps = True
        if state.reopened:  # the sweep had closed it: forget its verdict before this request judges the run
            settle_reopened(conn, [state])
        was = state.row["status"]
        _settle(conn, state, root, assembly, stored.truncated, fresh, now, pending)
        report_run(report, state.row, was, root is not None, new_steps)

    if new_rows:
        sql.insert_steps(conn, new_rows)
    _update_runs(sql, conn, states, now)
    pending.send(conn)
    if counts:
        _add_counts(conn, counts)
    return accepted, duplicates, rejected


def _add_counts(conn: sa.Connection, counts: list[tuple[int, int, int, str]]) -> None:
    """Counters move by what this request changed (steps, error steps, retries per run): never a
    recount of the stored trace."""
    conn.execute(_ADD_COUNTS, [{"b_steps": a, "b_errors": b, "b_retries": c, "b_run_id": r} for a, b, c, r in counts])


def _update_stored(conn: sa.Connection, run_id: str, assembly: Assembly) -> None:
    """Write the stored steps this request adopted (their parent arrived) or relinked."""
    if assembly.adopted:
        conn.execute(_ADOPT, [{"b_run_id": run_id, "b_seq": seq, "b_parent": parent}
                              for seq, parent in assembly.adopted])
    if assembly.relinked:
        conn.execute(_RELINK, [{"b_run_id": run_id, "b_seq": seq, "b_attempt": a, "b_retry_of": r}
                               for seq, a, r in assembly.relinked])


def _settle(conn: sa.Connection, state: RunState, root: SpanRecord | None, assembly: Assembly, truncated: bool,
            fresh: list[SpanRecord], now: datetime, pending: _Pending) -> None:
    """Settle the run row by the shared rules (``store/otlp_settle.py``) and queue what they decided."""
    row = state.row
    settled = settle(state, root, assembly, truncated, fresh, now,
                     lambda view: otlp_stored.nested_agents(conn, row["run_id"], view))
    if root is not None:
        pending.roots.append({"b_run_id": row["run_id"], "b_span": root.span_id, "b_error": row["root_error"]})
    if settled.failure is not None:
        pending.failures.append(settled.failure)
    elif settled.recovered:
        pending.recovered.append(row["run_id"])


@dataclass(slots=True)
class _Pending:
    """Run-level writes that _settle decides per run and _write sends once per request."""

    roots: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)

    def send(self, conn: sa.Connection) -> None:
        if self.roots:
            conn.execute(_ROOTS, self.roots)
        if self.failures:
            stmt = insert(conn, failures)
            changed = ("failure_type", "failure_code", "step_seq", "recorded_at")
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["run_id"], set_={name: stmt.excluded[name] for name in changed}), self.failures)
        if self.recovered:
            conn.execute(failures.delete().where(failures.c.run_id.in_(self.recovered)))


def _update_runs(sql: Any, conn: sa.Connection, states: dict[str, RunState], now: datetime) -> None:
    hours: list[datetime] = []
    rows = []
    for run_id, state in states.items():
        if not state.dirty:
            continue
        row = state.row
        start = state.fallback_start or row["started_at"]
        if row["started_at"] is not None:
            hours.append(row["started_at"])
        if start is not None and start != row["started_at"]:
            hours.append(start)
        ended = row["ended_at"]
        duration = (ended - start).total_seconds() * 1000.0 if ended and start else None
        values = {name: row[name] for name in ("agent_id", "agent_version", "environment", "status")}
        values.update(
            started_at=start,
            ended_at=ended,
            duration_ms=duration,
            failure_type=row["failure_type"],
            failure_code=row["failure_code"],
            meta=row["meta"],
            meta_removed=row["meta_removed"] or 0,
            updated_at=now,
        )
        rows.append(sql.update_row(run_id, values))
    # The hours the runs leave and enter, for the rollup refresher, in this transaction.
    mark_dirty(conn, hours)
    if rows:
        sql.update_runs(conn, rows, set())  # counters: see _write, never a recount
