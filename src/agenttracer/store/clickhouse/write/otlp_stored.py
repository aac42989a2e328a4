"""What the ClickHouse OTLP writer reads of a stored run for one request — the SQL store's selection.

The same reads as ``store/sql/write/otlp_stored.py``, under the same limits (``otlp_assemble``:
``VERDICT_ROWS``, ``NEIGHBOUR_ROWS``, ``MAX_DEPTH``, ``MAX_ADOPTED``), so what a request hands to
Python is bounded by the request, never by the stored trace (docs/otlp.md, "Work per request"):

* the request's own span ids and their parents;
* the run's highest seq (one aggregate, in the parents' statement);
* the stored steps waiting for one of the new spans as their parent, at most ``MAX_ADOPTED``;
* the run's error and retry steps, at most ``VERDICT_ROWS``;
* per failed action of the new spans: the stored attempt that ended last before the earliest new one
  started and at most ``NEIGHBOUR_ROWS`` attempts that ended after it (one lookup per new attempt past
  them when they run out);
* parents walked up from an agent step in error, ``MAX_DEPTH`` levels at most.

A step is stored as several versions while it changes (its parent arrives, a late attempt relinks it,
its run's identity moves it), so every read takes the newest version per seq before it filters on what
can change (``parent_seq``, ``attempt``, ``retry_of_seq``). What never changes (span ids, status, type,
name, times) narrows the rows first. The engine still scans the run's granules (found by the run_id
bloom filter) for the few narrow columns a selection needs; only the selected rows come back whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from agenttracer.store import otlp_assemble
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.write.rows import STEP_COLUMNS
from agenttracer.store.otlp_assemble import MAX_DEPTH, NEIGHBOUR_ROWS, VERDICT_ROWS, SpanRecord, Stored, is_agent

Step = dict[str, Any]

_RUN = "project = {project:String} AND run_id = {run_id:String}"
# The columns a selection filters or orders on, read for every stored version of the run's steps.
_NARROW = "seq, span_id, parent_span_id, status, step_type, name, ended_at, attempt, retry_of_seq, parent_seq"
_VERDICT = "span_id IS NOT NULL AND (status = 'error' OR retry_of_seq IS NOT NULL OR attempt > 1)"
_ACTION = "step_type = {step_type:String} AND name = {name:String} AND span_id IS NOT NULL"


def _newest(columns: str, pre: str) -> str:
    """The newest version of each of the run's steps matching ``pre`` (only conditions on what never
    changes between versions), tombstones dropped; ``columns`` selected."""
    return (f"SELECT {columns} FROM (SELECT {columns}, is_deleted FROM steps WHERE {_RUN} AND ({pre})"
            " ORDER BY version DESC LIMIT 1 BY seq) WHERE is_deleted = 0")


def _select(conn: Connection, params: dict[str, Any], pre: str, cond: str, order: str, limit: int) -> list[Step]:
    """Whole newest rows of at most ``limit`` steps: those matching ``pre`` whose newest version
    matches ``cond``, first ``limit`` by ``order``."""
    seqs = f"SELECT seq FROM ({_newest(_NARROW, pre)}) WHERE {cond} ORDER BY {order} LIMIT {int(limit)}"
    return _whole(conn, params, f"seq IN ({seqs})")


def _whole(conn: Connection, params: dict[str, Any], pre: str) -> list[Step]:
    result = conn.query(f"{_newest(', '.join(STEP_COLUMNS[:-1]), pre)}", params)
    return result.dicts()


def stored_span_ids(conn: Connection, project: str, run_id: str, span_ids: list[str]) -> dict[str, int]:
    """Which of these span ids the run already holds, with their seqs."""
    if not span_ids:
        return {}
    result = conn.query(
        f"{_newest('span_id, seq', 'span_id IN {ids:Array(String)}')}",
        {"project": project, "run_id": run_id, "ids": span_ids},
    )
    return {span_id: seq for span_id, seq in result.rows}


def steps_at(conn: Connection, project: str, run_id: str, seqs: Iterable[int]) -> dict[int, Step]:
    """The newest stored rows of these seqs (those stored), by seq."""
    wanted = sorted(set(seqs))
    if not wanted:
        return {}
    rows = _whole(conn, {"project": project, "run_id": run_id, "seqs": wanted}, "seq IN {seqs:Array(UInt32)}")
    return {row["seq"]: row for row in rows}


def all_steps(conn: Connection, project: str, run_id: str) -> dict[int, Step]:
    """Every stored step of the run, by seq: only when the run's identity moves (its sorting key)."""
    return {row["seq"]: row for row in _whole(conn, {"project": project, "run_id": run_id}, "1")}


def top_and_parents(conn: Connection, project: str, run_id: str, span_ids: list[str]) -> tuple[int, dict[str, int]]:
    """The run's highest stored seq (0 when it has no steps) and which of these span ids it holds, with
    their seqs: one statement (each statement scans the run's granules)."""
    top = f"SELECT CAST(NULL, 'Nullable(String)') AS span_id, max(seq) AS seq FROM steps WHERE {_RUN}"
    params: dict[str, Any] = {"project": project, "run_id": run_id}
    if span_ids:
        top = f"{top} UNION ALL {_newest('span_id, seq', 'span_id IN {ids:Array(String)}')}"
        params["ids"] = span_ids
    rows = conn.query(top, params).rows
    highest = max((int(seq or 0) for span_id, seq in rows if span_id is None), default=0)
    return highest, {span_id: seq for span_id, seq in rows if span_id is not None}


def counters(conn: Connection, project: str, run_id: str) -> tuple[int, int, int]:
    """The run's step, error step and retry counts recounted from its stored steps (one aggregate)."""
    newest = _newest("seq, status, attempt", "1")
    rows = conn.query(
        f"SELECT count(), countIf(status = 'error'), countIf(attempt > 1) FROM ({newest})",
        {"project": project, "run_id": run_id},
    ).rows
    return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])


def read_stored(conn: Connection, project: str, run_id: str, new: list[SpanRecord]) -> Stored:
    """Everything ``otlp_assemble.assemble`` needs of the stored run to add the ``new`` steps."""
    stored = Stored()
    new_ids = {s.span_id for s in new}
    top, stored.parents = top_and_parents(
        conn, project, run_id, sorted({s.parent_span_id for s in new if s.parent_span_id} - new_ids))
    if top == 0:
        return Stored()
    stored.next_seq = top + 1
    params: dict[str, Any] = {"project": project, "run_id": run_id}
    if new_ids:
        orphans = conn.query(
            f"SELECT seq, parent_span_id FROM ({_newest(_NARROW, 'parent_span_id IN {ids:Array(String)}')})"
            f" WHERE parent_seq IS NULL ORDER BY seq LIMIT {otlp_assemble.MAX_ADOPTED}",
            {**params, "ids": sorted(new_ids)},
        )
        stored.orphans = [(seq, parent) for seq, parent in orphans.rows]
    # Seqs with any version that is an error or a retry: a superset of those whose newest version is one.
    ever = f"seq IN (SELECT seq FROM steps WHERE {_RUN} AND {_VERDICT})"
    rows = _records(sorted(_select(conn, params, ever, _VERDICT, "seq", VERDICT_ROWS + 1), key=lambda r: r["seq"]))
    stored.truncated = len(rows) > VERDICT_ROWS
    stored.rows = {r.seq: r for r in rows[:VERDICT_ROWS]}
    for (step_type, name), attempts in otlp_assemble.actions_to_link(new, stored).items():
        _read_neighbours(conn, {**params, "step_type": step_type, "name": name}, attempts, stored)
    return stored


def _read_neighbours(conn: Connection, action: dict[str, Any], attempts: list[SpanRecord], stored: Stored) -> None:
    earliest = min(s.started_at for s in attempts)
    before = _before(conn, action, earliest)
    after = _records(sorted(
        _select(conn, {**action, "t": earliest}, f"{_ACTION} AND ended_at > {{t:DateTime64(6)}}", "1",
                "ended_at, seq", NEIGHBOUR_ROWS),
        key=lambda r: (r["ended_at"], r["seq"])))
    stored.neighbours[(action["step_type"], action["name"])] = after
    found = before + after
    if len(after) == NEIGHBOUR_ROWS:
        # Crowded: the new attempts that start past the last one read get their previous attempt
        # one lookup each.
        horizon = after[-1].ended_at
        for s in attempts:
            if s.started_at > horizon:
                found += _before(conn, action, s.started_at)
    for r in found:
        stored.rows.setdefault(r.seq, r)


def _before(conn: Connection, action: dict[str, Any], moment: Any) -> list[SpanRecord]:
    """The attempt of the action that ended last at or before ``moment`` (none or one)."""
    return _records(_select(conn, {**action, "t": moment}, f"{_ACTION} AND ended_at <= {{t:DateTime64(6)}}", "1",
                            "ended_at DESC, seq DESC", 1))


def nested_agents(conn: Connection, project: str, run_id: str, view: list[SpanRecord]) -> set[int]:
    """Of the view's agent steps in error, those with another agent step above them: their parents
    read a level at a time (the view's own records first), at most ``MAX_DEPTH`` levels up."""
    known = {s.seq: (s.parent_seq, s.is_agent) for s in view}
    climbing: dict[int, tuple[int | None, int]] = {s.seq: (s.parent_seq, 0) for s in view if s.error and s.is_agent}
    out: set[int] = set()
    while climbing:
        missing = {up for up, _ in climbing.values() if up is not None and up not in known}
        for found, row in steps_at(conn, project, run_id, missing).items():
            known[found] = (row["parent_seq"], is_agent(_meta(row)))
        still: dict[int, tuple[int | None, int]] = {}
        for step, (seq, hops) in climbing.items():
            if seq is None or hops >= MAX_DEPTH or seq not in known:
                continue
            parent, agent = known[seq]
            if agent:
                out.add(step)
            else:
                still[step] = (parent, hops + 1)
        climbing = still
    return out


def record(step: Step) -> SpanRecord:
    """A stored step as the assembler's SpanRecord."""
    meta = _meta(step)
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


def _records(rows: list[Step]) -> list[SpanRecord]:
    return [record(row) for row in rows]


def _meta(step: Step) -> dict[str, Any]:
    meta = step["meta"]
    if isinstance(meta, dict):
        return meta
    return orjson.loads(meta) if meta else {}
