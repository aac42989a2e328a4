"""The OTLP writer: one request's mapped spans into runs, steps and failures, in one transaction.

It stands beside ``store/writer.py`` (the SDK's events) and shares its machinery: the same SQLite
single-writer lock, placeholder rows and locked reads of the touched runs (``FOR UPDATE`` in run_id
order on PostgreSQL), the same bulk step insert (COPY / multi-row INSERT) and the same run update
that recomputes step, error and retry counts from the steps table, plus the rollup dirty marks.

What differs is identity and order. An SDK step is identified by (run_id, seq) with seq chosen by
the SDK; a span is identified by its span id, and its seq is its rank by start time among the run's
spans, which a later request can change (a parent exported after its children starts before them).
So, per touched run, under the run's lock:

1. the stored span ids (and, when needed, the stored steps) are read; a span already stored is a
   ``duplicate`` and changes nothing;
2. the run's steps are re-assembled from stored + new spans (``store/write/otlp_assemble.py``); when no
   stored step's seq, parent, attempt or retry link changes — a new run, or spans appended after
   the stored ones — only the new steps are inserted, otherwise the run's steps are rewritten;
3. the run settles when its root span arrives: start and end from the root, status and failure from
   the root's status and the unrecovered error steps. Before that it is ``running``, started at its
   earliest span. Spans arriving after the root are added and can only turn a success into a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agenttracer.model import DEFAULT_PROJECT, MAX_META_KEYS, MAX_SEQ
from agenttracer.store.dialect import insert
from agenttracer.store.rollup.marks import mark_dirty
from agenttracer.store.schema.tables import failures, steps
from agenttracer.store.write.lock import write_lock
from agenttracer.store.write.otlp_assemble import Cause, SpanRecord, assemble, failure_cause
from agenttracer.store.write.run_state import RunState
from agenttracer.store.write.sqlite_checkpoint import after_commit
from agenttracer.store.write.writer import _driver_helpers

_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
_MAX_ATTEMPTS = 3
DEFAULT_AGENT_ID = "unknown_service"
DEFAULT_VERSION = "unversioned"
DEFAULT_ENVIRONMENT = "development"


@dataclass(slots=True)
class Written:
    """How many of the request's spans were stored now, were already stored, or were refused (their
    trace id is the run_id of a run the SDK reported, or their run would pass MAX_SEQ steps)."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    # For the server's agent-level metrics (only stored values): each touched run's identity after the
    # commit, the runs that settled now (run_id, status), the runs that failed now (run_id, failure
    # type, code), and the steps stored now (run_id, step_type, latency_ms).
    identities: dict[str, tuple[str | None, str | None, str | None]] = field(default_factory=dict)
    settled: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)


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
    failed = 0
    while True:
        try:
            with write_lock(engine), engine.begin() as conn:
                report = Written()
                accepted, duplicates, rejected = _write(conn, by_run, now, report, project)
            after_commit(engine)
            break
        except sa.exc.DBAPIError as exc:
            failed += 1
            if getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES and failed < _MAX_ATTEMPTS:
                continue
            raise
    written.accepted += accepted
    written.duplicates += duplicates
    written.rejected += rejected
    written.identities, written.settled, written.failed, written.steps = (
        report.identities, report.settled, report.failed, report.steps
    )
    return written


def _write(
    conn: sa.Connection, by_run: dict[str, dict[str, SpanRecord]], now: datetime, report: Written, project: str
) -> tuple[int, int, int]:
    rows_for, sql = _driver_helpers(conn.dialect)
    run_ids = sorted(by_run)
    starts = [(run_id, min(s.started_at for s in by_run[run_id].values())) for run_id in run_ids]
    created = sql.insert_placeholders(conn, starts, now, project)
    states = {data["run_id"]: RunState(data) for data in sql.load_runs(conn, run_ids)}
    foreign = {run_id for run_id, state in states.items() if state.row["project"] != project}
    for run_id in foreign:
        del states[run_id]
    for data in states.values():
        data.row["meta"] = dict(data.row["meta"] or {})
    existing = [run_id for run_id in run_ids if run_id not in created and run_id not in foreign]
    stored_ids, sdk_runs = _stored_span_ids(conn, existing) if existing else ({}, set())

    accepted = duplicates = rejected = 0
    new_rows: list[tuple[Any, ...]] = []
    rewrite: list[str] = []
    rewrite_rows: list[tuple[Any, ...]] = []
    new_failures: list[dict[str, Any]] = []
    for run_id in run_ids:
        if run_id in foreign:
            rejected += len(by_run[run_id])  # a trace id that is another project's run: never written from here
            continue
        state = states[run_id]
        if run_id in sdk_runs:
            rejected += len(by_run[run_id])  # a trace id that is an SDK run's id: that run is not ours
            continue
        known = stored_ids.get(run_id, set())
        root_done = state.row["ended_at"] is not None
        fresh: list[SpanRecord] = []
        root: SpanRecord | None = None
        for span in by_run[run_id].values():
            # A root that is the run itself is not a step: once the run has settled, it is a repeat.
            if span.span_id in known or (span.is_root and span.step_type is None and root_done):
                duplicates += 1
                continue
            fresh.append(span)
            if span.is_root and not root_done:
                if root is None:
                    root = span
                elif span.step_type is None:
                    span.step_type = "other"  # a second parentless span of one trace is a step of it
        if not fresh:
            continue
        new_steps = [s for s in fresh if s.step_type is not None]
        if len(known) + len(new_steps) > MAX_SEQ:
            rejected += len(fresh)  # a run holds at most MAX_SEQ steps (model.py's seq rule)
            continue
        accepted += len(fresh)
        stored = _stored_steps(conn, run_id) if known else []
        before = {s.span_id: s.derived() for s in stored}
        every = stored + new_steps
        assemble(every)
        if any(before[s.span_id] != s.derived() for s in stored):
            rewrite.append(run_id)
            rewrite_rows += [rows_for.row(_step_values(s)) for s in every]
        else:
            new_rows += [rows_for.row(_step_values(s)) for s in new_steps]
        if new_steps:
            state.new_steps = True
        was = state.row["status"]
        failure = _settle(state, root, every, fresh, now)
        row = state.row
        report.identities[run_id] = (row["agent_id"], row["agent_version"], row["environment"])
        report.steps += [{"run_id": run_id, "step_type": s.step_type, "latency_ms": s.latency_ms} for s in new_steps]
        if root is not None:
            report.settled.append((run_id, row["status"]))
        if row["status"] == "failure" and was != "failure":
            report.failed.append((run_id, row["failure_type"], row["failure_code"]))
        if failure is not None:
            new_failures.append(failure)
        elif run_id in rewrite and state.row["status"] == "failure":
            # The stored failure stays; its link follows its step to the step's new seq.
            renumbered = {old[0]: s.seq for s in stored if (old := before[s.span_id])[0] != s.seq}
            _relink_failure(conn, run_id, renumbered)

    if rewrite:
        conn.execute(sa.delete(steps).where(steps.c.run_id.in_(rewrite)))
        new_rows += rewrite_rows
    if new_rows:
        sql.insert_steps(conn, new_rows)
    if new_failures:
        stmt = insert(conn, failures)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id"],
            set_={name: stmt.excluded[name] for name in ("failure_type", "failure_code", "step_seq", "recorded_at")},
        )
        conn.execute(stmt, new_failures)
    _update_runs(sql, conn, states, now)
    return accepted, duplicates, rejected


def _relink_failure(conn: sa.Connection, run_id: str, renumbered: dict[int, int]) -> None:
    linked = conn.execute(sa.select(failures.c.step_seq).where(failures.c.run_id == run_id)).scalar()
    if linked is not None and linked in renumbered:
        conn.execute(failures.update().where(failures.c.run_id == run_id).values(step_seq=renumbered[linked]))


def _stored_span_ids(conn: sa.Connection, run_ids: list[str]) -> tuple[dict[str, set[str]], set[str]]:
    """The span ids stored per run, and the runs holding steps without one (sent by the SDK)."""
    out: dict[str, set[str]] = {}
    sdk: set[str] = set()
    for run_id, span_id in conn.execute(sa.select(steps.c.run_id, steps.c.span_id).where(steps.c.run_id.in_(run_ids))):
        if span_id is None:
            sdk.add(run_id)
        else:
            out.setdefault(run_id, set()).add(span_id)
    return out, sdk


def _stored_steps(conn: sa.Connection, run_id: str) -> list[SpanRecord]:
    out = []
    for row in conn.execute(sa.select(steps).where(steps.c.run_id == run_id)).mappings():
        meta = dict(row["meta"] or {})
        attempt = row["attempt"]
        out.append(
            SpanRecord(
                run_id=run_id,
                span_id=row["span_id"],
                parent_span_id=row["parent_span_id"],
                step_type=row["step_type"],
                name=row["name"],
                started_at=row["started_at"],
                ended_at=row["ended_at"],
                latency_ms=row["latency_ms"],
                error=row["status"] == "error",
                error_class=row["error_class"],
                failure_code=row["failure_code"],
                # An attempt number the framework stated is kept; a derived one is derived again.
                explicit_attempt=attempt if attempt > 1 and row["retry_of_seq"] is None else None,
                agent_name=meta.get("agent_name") if isinstance(meta.get("agent_name"), str) else None,
                agent_version=None,
                meta=meta,
                dropped=row["meta_removed"],
                seq=row["seq"],
                parent_seq=row["parent_seq"],
                attempt=attempt,
                retry_of_seq=row["retry_of_seq"],
            )
        )
    return out


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


def _settle(
    state: RunState, root: SpanRecord | None, every: list[SpanRecord], fresh: list[SpanRecord], now: datetime
) -> dict[str, Any] | None:
    """Update the run row from its spans (``state.fallback_start`` carries the new start); return the
    failure row to write, if the failure changed."""
    row = state.row
    state.dirty = True
    row["meta_removed"] = (row["meta_removed"] or 0) + sum(s.dropped for s in fresh if s is not root)
    if root is None:
        if row["agent_id"] is None:
            _identity(row, None, every, fresh)
        if row["ended_at"] is None:  # still running: it starts at its earliest span
            state.fallback_start = min([s.started_at for s in fresh] + [row["started_at"]])
            return None
    cause = failure_cause(every)
    if root is not None:
        _identity(row, root, every, fresh)
        state.fallback_start = root.started_at
        row["ended_at"] = root.ended_at
        resource = root.resource
        row["meta_removed"] += root.dropped + (resource.dropped if resource else 0)
        meta = row["meta"]
        for source in (resource.meta if resource else {}, root.meta):
            for key, value in source.items():
                if key in meta or len(meta) < MAX_META_KEYS:
                    meta[key] = value
        if cause is None and root.error:
            cause = Cause("orchestration", root.failure_code or "unhandled_exception")
        row["status"] = "failure" if cause is not None else "success"
    elif cause is None:
        return None  # a late span that leaves the settled run as it was
    else:
        row["status"] = "failure"
    if cause is None:
        return None
    row["failure_type"], row["failure_code"] = cause.failure_type, cause.failure_code
    return {
        "run_id": row["run_id"],
        "failure_type": cause.failure_type,
        "failure_code": cause.failure_code,
        "step_seq": cause.step_seq,
        "message": None,
        "recorded_at": row["ended_at"] or now,
    }


def _identity(row: dict[str, Any], root: SpanRecord | None, every: list[SpanRecord], fresh: list[SpanRecord]) -> None:
    """Agent from the root's agent name, else the earliest step that names one, else the resource's
    service; version from the root's agent version, else the resource; environment from the resource."""
    resource = (root.resource if root is not None else None) or next((s.resource for s in fresh if s.resource), None)
    service = resource.meta if resource is not None else {}
    agent = root.agent_name if root is not None else None
    if agent is None:
        agent = next((s.agent_name for s in every if s.agent_name), None)
    version = root.agent_version if root is not None else None
    row["agent_id"] = agent or _text(service.get("service")) or row["agent_id"] or DEFAULT_AGENT_ID
    row["agent_version"] = version or _text(service.get("service_version")) or DEFAULT_VERSION
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
        sql.update_runs(conn, rows, {run_id for run_id, s in states.items() if s.new_steps})
