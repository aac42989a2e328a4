"""OTLP spans (``POST /v1/traces``) into ClickHouse, by the rules of the SQL store's OTLP writer.

A trace is a run; a span is identified by its span id and takes the next free seq of its run for good;
parents, retry links and the verdict follow the same pure code on both stores
(``store/otlp_assemble.py``, ``store/otlp_settle.py``, ``agenttracer.verdict``). Per touched run, under
this process's run lock (``write/writer.py``: ``run_locks``):

1. read the run's newest version and its stored steps (newest version of each seq);
2. take what the assembler needs of them (``_stored``: the error and retry steps, the attempts next
   to the new ones, parents and orphans — the selection the SQL store makes with its indexes) and
   assemble the new spans onto it; settle the run's row;
3. insert the new steps, new versions of the stored steps the request adopted or relinked (and of
   all of them, with tombstones, when the run's identity changed: a root that names the agent arrives
   last), then the run's new version with counters recounted.

Reading a run's stored steps is proportional to the stored trace (a ClickHouse read of one run's rows,
pruned by the run_id bloom filter), unlike the SQL store's index lookups: fine for the traces agents
produce (hundreds to thousands of spans), slower for a 200 k-span trace (docs/clickhouse.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from agenttracer.model import DEFAULT_PROJECT, MAX_SEQ
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.projects import ensure_project
from agenttracer.store.clickhouse.write.rows import (
    STEP_COLUMNS,
    insert_runs,
    insert_steps,
    newest_runs,
    next_version,
    run_tombstone,
    run_values,
    step_values,
)
from agenttracer.store.clickhouse.write.writer import run_locks
from agenttracer.store.otlp_assemble import (
    MAX_DEPTH,
    NEIGHBOUR_ROWS,
    VERDICT_ROWS,
    Assembly,
    SpanRecord,
    Stored,
    assemble,
    is_agent,
)
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
    with run_locks(run_ids):
        ensure_project(conn, project, now)
        stored_runs = newest_runs(conn, run_ids)
        step_rows: list[tuple[Any, ...]] = []
        run_rows: list[tuple[Any, ...]] = []
        for run_id in run_ids:
            _write_run(conn, run_id, by_run[run_id], stored_runs.get(run_id), now, project, written, step_rows,
                       run_rows)  # fmt: skip
        if step_rows:
            insert_steps(conn, step_rows, uuid.uuid4().hex)
        if run_rows:
            insert_runs(conn, run_rows, uuid.uuid4().hex)
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
    steps = {} if created else _run_steps(conn, project, run_id)
    records = {seq: _record(step) for seq, step in steps.items()}
    fresh, root = new_spans(spans, {r.span_id for r in records.values() if r.span_id}, row["root_span_id"])
    written.duplicates += len(spans) - len(fresh)
    if not fresh:
        return
    new = [s for s in fresh if s.step_type is not None]
    stored = _stored(records, new)
    if stored.next_seq + len(new) - 1 > MAX_SEQ:
        written.rejected += len(fresh)  # a run holds at most MAX_SEQ steps (model.py's seq rule)
        return
    written.accepted += len(fresh)
    assembly = assemble(new, stored)
    changed = _apply_links(steps, assembly)
    if state.reopened:  # the sweep had closed it: forget its verdict before this request judges the run
        row["abandoned"] = False
        if state.sweep_failure:
            row["failure_step_seq"] = row["failure_message"] = row["failure_recorded_at"] = None
    was = row["status"]
    settled = settle(state, root, assembly, stored.truncated, fresh, now, lambda view: _nested(records, view))
    if settled.failure is not None:
        failure = settled.failure
        row.update(failure_step_seq=failure["step_seq"], failure_message=None,
                   failure_recorded_at=failure["recorded_at"])  # fmt: skip
    elif settled.recovered:
        row["failure_step_seq"] = row["failure_message"] = row["failure_recorded_at"] = None
    report(written, row, was, root is not None, new)
    row["started_at"] = state.fallback_start or row["started_at"]

    identity = (row["agent_id"], row["agent_version"], row["environment"])
    tombstone, version = next_version(), next_version()
    for seq, step in steps.items():
        moved = (step["agent_id"], step["agent_version"], step["environment"]) != tuple(x or "" for x in identity)
        if moved:
            step_rows.append(step_values(project, (step["agent_id"], step["agent_version"], step["environment"]),
                                         step, tombstone, deleted=1))  # fmt: skip
        if moved or seq in changed:
            step_rows.append(step_values(project, identity, step, version))
    step_rows += [step_values(project, identity, step_columns(s), version) for s in new]
    everything = [*steps.values(), *({"status": "error" if s.error else "ok", "attempt": s.attempt} for s in new)]
    row["step_count"] = len(everything)
    row["error_step_count"] = sum(s["status"] == "error" for s in everything)
    row["retry_count"] = sum(s["attempt"] > 1 for s in everything)
    old = run_tombstone(row, tombstone)
    if old is not None:
        run_rows.append(old)
    run_rows.append(run_values(row, version, now))


def _placeholder(run_id: str, project: str, now: datetime, start: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id, "project": project, "agent_id": None, "agent_version": None, "environment": None,
        "status": "running", "started_at": start, "ended_at": None, "step_count": 0, "error_step_count": 0,
        "retry_count": 0, "failure_type": None, "failure_code": None, "failure_step_seq": None,
        "failure_message": None, "failure_recorded_at": None, "meta": {}, "meta_removed": 0, "ingested_at": now,
        "updated_at": now, "root_span_id": None, "root_error": None, "source": SOURCE_OTLP, "abandoned": False,
        "_key": None,
    }  # fmt: skip


def _run_steps(conn: Connection, project: str, run_id: str) -> dict[int, dict[str, Any]]:
    """The run's stored steps (newest version of each seq), by seq."""
    result = conn.query(
        f"SELECT {', '.join(STEP_COLUMNS)} FROM steps WHERE project = {{project:String}} AND run_id = {{run_id:String}}"
        " ORDER BY version DESC LIMIT 1 BY seq",
        {"project": project, "run_id": run_id},
    )
    return {step["seq"]: step for step in result.dicts() if not step["is_deleted"]}


def _record(step: dict[str, Any]) -> SpanRecord:
    meta = orjson.loads(step["meta"]) if step["meta"] else {}
    agent = meta.get("agent_name")
    return SpanRecord(
        run_id=step["run_id"], span_id=step["span_id"], parent_span_id=step["parent_span_id"],
        step_type=step["step_type"], name=step["name"], started_at=step["started_at"], ended_at=step["ended_at"],
        latency_ms=step["latency_ms"], error=step["status"] == "error", error_class=step["error_class"],
        failure_code=step["failure_code"], explicit_attempt=None,
        agent_name=agent if isinstance(agent, str) and agent else None, agent_version=None, meta=meta,
        dropped=step["meta_removed"], seq=step["seq"], parent_seq=step["parent_seq"], attempt=step["attempt"],
        retry_of_seq=step["retry_of_seq"],
    )  # fmt: skip


def _stored(records: dict[int, SpanRecord], new: list[SpanRecord]) -> Stored:
    """What ``assemble`` needs of the stored run: the selection ``store/sql/write/otlp_stored.py`` makes."""
    stored = Stored()
    if not records:
        return stored
    stored.next_seq = max(records) + 1
    new_ids = {s.span_id for s in new}
    by_span = {r.span_id: seq for seq, r in records.items() if r.span_id}
    wanted = {s.parent_span_id for s in new if s.parent_span_id} - new_ids
    stored.parents = {span_id: by_span[span_id] for span_id in wanted if span_id in by_span}
    ordered = [records[seq] for seq in sorted(records)]
    stored.orphans = [
        (r.seq, r.parent_span_id) for r in ordered if r.parent_seq is None and r.parent_span_id in new_ids
    ]
    flagged = [r for r in ordered if r.span_id and (r.error or r.retry_of_seq is not None or r.attempt > 1)]
    stored.truncated = len(flagged) > VERDICT_ROWS
    stored.rows = {r.seq: r for r in flagged[:VERDICT_ROWS]}
    failed = {r.key for r in stored.rows.values() if r.error} | {s.key for s in new if s.error}
    by_key: dict[tuple[str, str], list[SpanRecord]] = {}
    for s in new:
        if s.step_type is not None and s.key in failed:
            by_key.setdefault(s.key, []).append(s)
    for key, attempts in by_key.items():
        action = [r for r in ordered if r.span_id and r.key == key]
        earliest = min(s.started_at for s in attempts)
        after = sorted((r for r in action if r.ended_at > earliest), key=lambda r: (r.ended_at, r.seq))
        after = after[:NEIGHBOUR_ROWS]
        stored.neighbours[key] = after
        found = _last_before(action, earliest) + after
        if len(after) == NEIGHBOUR_ROWS:
            horizon = after[-1].ended_at
            for s in attempts:
                if s.started_at > horizon:
                    found += _last_before(action, s.started_at)
        for r in found:
            stored.rows.setdefault(r.seq, r)
    return stored


def _last_before(action: list[SpanRecord], moment: datetime) -> list[SpanRecord]:
    before = [r for r in action if r.ended_at <= moment]
    return [max(before, key=lambda r: (r.ended_at, r.seq))] if before else []


def _apply_links(steps: dict[int, dict[str, Any]], assembly: Assembly) -> set[int]:
    """Write the adoptions and relinks into the stored steps' rows; return the seqs changed."""
    for seq, parent in assembly.adopted:
        steps[seq]["parent_seq"] = parent
    for seq, attempt, retry_of in assembly.relinked:
        steps[seq]["attempt"], steps[seq]["retry_of_seq"] = attempt, retry_of
    return {seq for seq, _ in assembly.adopted} | {seq for seq, _, _ in assembly.relinked}


def _nested(records: dict[int, SpanRecord], view: list[SpanRecord]) -> set[int]:
    """Of the view's agent steps in error, those with another agent step above them (at most
    ``MAX_DEPTH`` parents up), as ``store/sql/write/otlp_stored.py: nested_agents`` answers."""
    known = {seq: (r.parent_seq, is_agent(r.meta)) for seq, r in records.items()}
    known.update({s.seq: (s.parent_seq, s.is_agent) for s in view})
    out: set[int] = set()
    for step in view:
        if not (step.error and step.is_agent):
            continue
        seq, hops = step.parent_seq, 0
        while seq is not None and hops < MAX_DEPTH and seq in known:
            parent, agent = known[seq]
            if agent:
                out.add(step.seq)
                break
            seq, hops = parent, hops + 1
    return out
