"""OTLP spans (``POST /v1/traces``) into ClickHouse, by the rules of the SQL store's OTLP writer.

A trace is a run; a span is identified by its span id and takes the next free seq of its run for good;
parents, retry links and the verdict follow the same pure code on both stores
(``store/otlp_assemble.py``, ``store/otlp_settle.py``, ``agenttracer.verdict``). Per touched run, under
this process's run lock (``write/writer.py``: ``run_locks``):

1. read what the rules need of the stored run (``otlp_stored.py``: the request's span ids, the run's
   highest seq, the error and retry steps, the attempts next to the new ones, parents and orphans —
   the SQL store's selection under the same limits) and assemble the new spans onto it; settle the
   run's row;
2. insert the new steps and new versions of the stored steps the request adopted or relinked (and of
   all of them, with tombstones, when the run's identity changed: a root that names the agent arrives
   last, once per run), then the run's new version with its counters moved by what the request added
   and relinked (recounted once when an earlier write was cut short between its two inserts).

What a request hands to Python is bounded by the request, not by the stored trace; the engine scans
the run's granules (the run_id bloom filter finds them) for the few columns a selection filters on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agenttracer.model import DEFAULT_PROJECT, MAX_SEQ
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.projects import ensure_project
from agenttracer.store.clickhouse.write import commit, otlp_stored
from agenttracer.store.clickhouse.write.rows import (
    IDENTITY,
    newest_runs,
    next_version,
    run_tombstone,
    run_values,
    step_values,
)
from agenttracer.store.clickhouse.write.writer import run_locks
from agenttracer.store.otlp_assemble import Assembly, SpanRecord, Stored, assemble
from agenttracer.store.otlp_settle import new_spans, report, settle, step_columns
from agenttracer.store.records import Written
from agenttracer.store.run_state import RunState, reopen_abandoned

SOURCE_OTLP = "otlp"


def write_spans(
    conn: Connection, spans: Sequence[SpanRecord], now: datetime, *, project: str = DEFAULT_PROJECT
) -> Written:
    """Store the spans (grouped into runs by trace) in ``project``. A span whose trace is a run of
    another project, or an SDK run, is refused. Raises ClickHouseError when the database fails; sending
    the request again then stores the rest (span ids already stored are duplicates)."""
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
    run_ids = sorted(by_run)
    with run_locks(run_ids), commit.coming(conn) as ticket:
        stored_runs = newest_runs(conn, run_ids)
        ensure_project(conn, project, now, has_runs=any(r["project"] == project for r in stored_runs.values()))
        step_rows: list[tuple[Any, ...]] = []
        run_rows: list[tuple[Any, ...]] = []
        for run_id in run_ids:
            _write_run(conn, run_id, by_run[run_id], stored_runs.get(run_id), now, project, written, step_rows,
                       run_rows)  # fmt: skip
        commit.insert(conn, step_rows, run_rows, ticket)
    return written


def _write_run(
    conn: Connection,
    run_id: str,
    spans: dict[str, SpanRecord],
    row: dict[str, Any] | None,
    now: datetime,
    project: str,
    written: Written,
    step_rows: list[tuple[Any, ...]],
    run_rows: list[tuple[Any, ...]],
) -> None:
    created = row is None
    if row is None:
        row = _placeholder(run_id, project, now, min(s.started_at for s in spans.values()))
    if row["project"] != project:
        written.rejected += len(spans)  # a trace id that is another project's run: never written from here
        return
    if row["source"] != SOURCE_OTLP:
        written.rejected += len(spans)  # a trace id that is an SDK run's id: that run is not ours
        written.other_source += len(spans)
        return
    state = RunState(row)
    reopen_abandoned(state)
    known = {} if created else otlp_stored.stored_span_ids(conn, project, run_id, sorted(spans))
    fresh, root = new_spans(spans, set(known), row["root_span_id"])
    written.duplicates += len(spans) - len(fresh)
    if not fresh:
        return
    new = [s for s in fresh if s.step_type is not None]
    stored = Stored() if created else otlp_stored.read_stored(conn, project, run_id, new)
    if stored.next_seq + len(new) - 1 > MAX_SEQ:
        written.rejected += len(fresh)  # a run holds at most MAX_SEQ steps (model.py's seq rule)
        return
    written.accepted += len(fresh)
    counts = _stored_counters(conn, project, row, stored.next_seq - 1)
    assembly = assemble(new, stored)
    if state.reopened:  # the sweep had closed it: forget its verdict before this request judges the run
        row["abandoned"] = False
        if state.sweep_failure:
            row["failure_step_seq"] = row["failure_message"] = row["failure_recorded_at"] = None
    was = row["status"]
    before = tuple(row[name] or "" for name in IDENTITY)
    settled = settle(state, root, assembly, stored.truncated, fresh, now,
                     lambda view: otlp_stored.nested_agents(conn, project, run_id, view))  # fmt: skip
    if settled.failure is not None:
        failure = settled.failure
        row.update(failure_step_seq=failure["step_seq"], failure_message=None,
                   failure_recorded_at=failure["recorded_at"])  # fmt: skip
    elif settled.recovered:
        row["failure_step_seq"] = row["failure_message"] = row["failure_recorded_at"] = None
    report(written, row, was, root is not None, new)
    row["started_at"] = state.fallback_start or row["started_at"]

    identity = tuple(row[name] or "" for name in IDENTITY)
    changed = {seq for seq, _ in assembly.adopted} | {seq for seq, _, _ in assembly.relinked}
    if created:
        steps: dict[int, dict[str, Any]] = {}
    elif identity != before:  # the run's sorting key moved: every stored step moves with it (once per run)
        steps = otlp_stored.all_steps(conn, project, run_id)
    else:
        steps = otlp_stored.steps_at(conn, project, run_id, changed)
    _apply_links(steps, assembly)
    tombstone, version = next_version(), next_version()
    for seq, step in steps.items():
        moved = tuple(step[name] for name in IDENTITY) != identity
        if moved:
            step_rows.append(step_values(project, tuple(step[name] for name in IDENTITY), step, tombstone,
                                         deleted=1))  # fmt: skip
        if moved or seq in changed:
            step_rows.append(step_values(project, identity, step, version))
    step_rows += [step_values(project, identity, step_columns(s), version) for s in new]
    row["step_count"] = counts[0] + len(new)
    row["error_step_count"] = counts[1] + sum(s.error for s in new)
    row["retry_count"] = counts[2] + assembly.retry_delta + sum(s.attempt > 1 for s in new)
    old = run_tombstone(row, tombstone)
    if old is not None:
        run_rows.append(old)
    run_rows.append(run_values(row, version, now))


def _stored_counters(conn: Connection, project: str, row: dict[str, Any], top: int) -> tuple[int, int, int]:
    """The run's counters before this request. A span takes the next free seq, so a run row that
    counts ``top`` steps counts them all, and the request moves the counters by what it adds and
    relinks; one that counts fewer (a write cut short after its steps were stored, before the run's
    new version) is recounted from the stored steps, once."""
    if row["step_count"] == top:
        return row["step_count"], row["error_step_count"], row["retry_count"]
    return otlp_stored.counters(conn, project, row["run_id"])


def _placeholder(run_id: str, project: str, now: datetime, start: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id, "project": project, "agent_id": None, "agent_version": None, "environment": None,
        "status": "running", "started_at": start, "ended_at": None, "step_count": 0, "error_step_count": 0,
        "retry_count": 0, "failure_type": None, "failure_code": None, "failure_step_seq": None,
        "failure_message": None, "failure_recorded_at": None, "meta": {}, "meta_removed": 0, "ingested_at": now,
        "updated_at": now, "root_span_id": None, "root_error": None, "source": SOURCE_OTLP, "abandoned": False,
        "_key": None,
    }  # fmt: skip


def _apply_links(steps: dict[int, dict[str, Any]], assembly: Assembly) -> None:
    """Write the adoptions and relinks into the stored steps' rows."""
    for seq, parent in assembly.adopted:
        steps[seq]["parent_seq"] = parent
    for seq, attempt, retry_of in assembly.relinked:
        steps[seq]["attempt"], steps[seq]["retry_of_seq"] = attempt, retry_of
