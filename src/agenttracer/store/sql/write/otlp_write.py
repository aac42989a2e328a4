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

from agenttracer.model import DEFAULT_PROJECT, MAX_META_KEYS, MAX_SEQ
from agenttracer.store.otlp_assemble import (
    DEFAULT_AGENT_ID,
    DEFAULT_ENVIRONMENT,
    DEFAULT_VERSION,
    Assembly,
    SpanRecord,
    Stored,
    assemble,
    verdict,
)
from agenttracer.store.records import Written
from agenttracer.store.run_state import RunState, reopen_abandoned
from agenttracer.store.sql.dialect import insert
from agenttracer.store.sql.rollup.marks import mark_dirty
from agenttracer.store.sql.schema.tables import SOURCE_OTLP, failures, runs, steps
from agenttracer.store.sql.write import otlp_stored
from agenttracer.store.sql.write.abandon import settle_reopened
from agenttracer.store.sql.write.transaction import driver_helpers, write_transaction
from agenttracer.verdict import UNHANDLED

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
        fresh, root = _new_spans(spans, known, state.row["root_span_id"])
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
        new_rows += [rows_for.row(_step_values(s)) for s in new_steps]
        _update_stored(conn, run_id, assembly)
        retries = sum(s.attempt > 1 for s in new_steps) + assembly.retry_delta
        counts.append((len(new_steps), sum(s.error for s in new_steps), retries, run_id))
        if new_steps:
            state.new_steps = True
        if state.reopened:  # the sweep had closed it: forget its verdict before this request judges the run
            settle_reopened(conn, [state])
        was = state.row["status"]
        _settle(conn, state, root, assembly, stored.truncated, fresh, now, pending)
        _report(report, state.row, was, root is not None, new_steps)

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


def _new_spans(
    spans: dict[str, SpanRecord], known: set[str], root_seen: str | None
) -> tuple[list[SpanRecord], SpanRecord | None]:
    """The spans not stored yet, and among them the run's root (the first parentless span, unless
    the run already has one: a second parentless span of one trace is a step of it)."""
    fresh: list[SpanRecord] = []
    root: SpanRecord | None = None
    for span in spans.values():
        if span.span_id in known or span.span_id == root_seen:
            continue
        fresh.append(span)
        if span.is_root:
            if root is None and root_seen is None:
                root = span
            elif span.step_type is None:
                span.step_type = "other"
    return fresh, root


def _report(report: Written, row: dict[str, Any], was: str, settled: bool, new_steps: list[SpanRecord]) -> None:
    run_id = row["run_id"]
    report.identities[run_id] = (row["agent_id"], row["agent_version"], row["environment"])
    report.steps += [{"run_id": run_id, "step_type": s.step_type, "latency_ms": s.latency_ms} for s in new_steps]
    if settled:
        report.settled.append((run_id, row["status"]))
    if row["status"] == "failure" and was != "failure":
        report.failed.append((run_id, row["failure_type"], row["failure_code"]))


def _update_stored(conn: sa.Connection, run_id: str, assembly: Assembly) -> None:
    """Write the stored steps this request adopted (their parent arrived) or relinked."""
    if assembly.adopted:
        conn.execute(_ADOPT, [{"b_run_id": run_id, "b_seq": seq, "b_parent": parent}
                              for seq, parent in assembly.adopted])
    if assembly.relinked:
        conn.execute(_RELINK, [{"b_run_id": run_id, "b_seq": seq, "b_attempt": a, "b_retry_of": r}
                               for seq, a, r in assembly.relinked])


def _step_values(step: SpanRecord) -> dict[str, Any]:
    return {
        "run_id": step.run_id,
        "seq": step.seq,
        "step_type": step.step_type,
        "name": step.name,
        "status": "error" if step.error else "ok",
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "latency_ms": step.latency_ms,
        "attempt": step.attempt,
        "retry_of_seq": step.retry_of_seq,
        "parent_seq": step.parent_seq,
        "error_class": step.error_class,
        "failure_code": step.failure_code,
        "meta": step.meta,
        "meta_removed": step.dropped,
        "span_id": step.span_id,
        "parent_span_id": step.parent_span_id,
    }


def _settle(conn: sa.Connection, state: RunState, root: SpanRecord | None, assembly: Assembly, truncated: bool,
            fresh: list[SpanRecord], now: datetime, pending: _Pending) -> None:
    """Update the run row from its spans (``state.fallback_start`` carries the new start) and, once
    its root has arrived, judge it (agenttracer.verdict) and write or clear its failure."""
    row = state.row
    state.dirty = True
    row["meta_removed"] = (row["meta_removed"] or 0) + sum(s.dropped for s in fresh if s is not root)
    if root is not None:
        _identity(row, root, _named(fresh, assembly), fresh)
        state.fallback_start = root.started_at
        row["ended_at"] = root.ended_at
        row["root_span_id"] = root.span_id
        row["root_error"] = (root.failure_code or UNHANDLED) if root.error else None
        resource = root.resource
        row["meta_removed"] += root.dropped + (resource.dropped if resource else 0)
        meta = row["meta"]
        for source in (resource.meta if resource else {}, root.meta):
            for key, value in source.items():
                if key in meta or len(meta) < MAX_META_KEYS:
                    meta[key] = value
        pending.roots.append({"b_run_id": row["run_id"], "b_span": root.span_id, "b_error": row["root_error"]})
    elif row["agent_id"] is None:
        _identity(row, None, _named(fresh, assembly), fresh)
    if row["root_span_id"] is None:
        if row["ended_at"] is None:  # still running: it starts at its earliest span
            state.fallback_start = min([s.started_at for s in fresh] + [row["started_at"]])
        return
    nested = otlp_stored.nested_agents(conn, row["run_id"], assembly.view) if any(
        s.error for s in assembly.view) else set()
    judged = verdict(assembly.view, row["root_error"], truncated, nested)
    row["status"] = judged.status
    if judged.failure_type is not None and judged.failure_code is not None:
        row["failure_type"], row["failure_code"] = judged.failure_type, judged.failure_code
        pending.failures.append({
            "run_id": row["run_id"], "failure_type": judged.failure_type, "failure_code": judged.failure_code,
            "step_seq": judged.cause_ref, "message": None, "recorded_at": row["ended_at"] or now})
    elif row["failure_type"] is not None:  # a late span recovered the run
        row["failure_type"] = row["failure_code"] = None
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


def _named(fresh: list[SpanRecord], assembly: Assembly) -> list[SpanRecord]:
    """The spans that name an agent, earliest first."""
    return sorted((s for s in [*fresh, *assembly.view] if s.agent_name), key=lambda s: (s.started_at, s.seq))


def _identity(row: dict[str, Any], root: SpanRecord | None, seen: list[SpanRecord], fresh: list[SpanRecord]) -> None:
    """The run's identity (docs/otlp.md): the resource's ``agenttracer.agent_id`` when set, else the
    outermost agent named in the trace (the root's, else the earliest-starting span's that names one),
    else the resource's service; the version likewise (``agenttracer.agent_version``, the root's agent
    version, ``service.version``); the environment from the resource, whose allow-list order already
    chose between ``agenttracer.environment`` and the ``deployment.environment`` spellings."""
    resource = (root.resource if root is not None else None) or next((s.resource for s in fresh if s.resource), None)
    service = resource.meta if resource is not None else {}
    agent = root.agent_name if root is not None else None
    if agent is None:
        agent = next((s.agent_name for s in seen), None)
    version = root.agent_version if root is not None else None
    row["agent_id"] = (_text(service.get("agent_id")) or agent or _text(service.get("service")) or row["agent_id"]
                       or DEFAULT_AGENT_ID)
    row["agent_version"] = (_text(service.get("agent_version")) or version or _text(service.get("service_version"))
                            or DEFAULT_VERSION)
    row["environment"] = _text(service.get("environment")) or DEFAULT_ENVIRONMENT


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


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
