"""What the OTLP writer reads of a stored run for one request — every read an index lookup.

Run under the run's lock (the SQLite writer lock; ``FOR UPDATE`` on PostgreSQL), in the writer's
transaction. The indexes are the partial ones over OTLP steps (``store/sql/schema/tables.py``, migration
0006). The work per run and request is bounded (docs/otlp.md, "Work per request"):

* the request's own span ids and their parents: one lookup each in (run_id, span_id);
* the run's highest seq: one probe of the primary key;
* the stored steps waiting for one of the new spans as their parent: (run_id, parent_span_id), at most
  ``otlp_assemble.MAX_ADOPTED`` per request (the others keep no parent: a parent that arrives after more of its
  children than that would otherwise make one small request update them all);
* the run's error and retry steps, at most ``VERDICT_ROWS`` (past it the run's verdict treats the
  rest as unrecovered errors);
* per action (step type and name) of the new spans: the stored attempt that ended last before the
  earliest new one started, and at most ``NEIGHBOUR_ROWS`` attempts that ended after it; when those
  run out before the new attempts do, one lookup per new attempt past them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from agenttracer.store import otlp_assemble
from agenttracer.store.otlp_assemble import MAX_DEPTH, NEIGHBOUR_ROWS, VERDICT_ROWS, SpanRecord, Stored, is_agent
from agenttracer.store.sql.schema.tables import VERDICT_STEP, steps

_CHUNK = 500  # ids per IN list

_OTLP = steps.c.span_id.isnot(None)
_RUN = steps.c.run_id == sa.bindparam("run_id")
# Built once: a request runs these for every stored run it touches, and building and caching a
# statement costs more than the indexed lookup itself.
_SPAN_IDS = sa.select(steps.c.span_id, steps.c.seq).where(
    _RUN, steps.c.span_id.in_(sa.bindparam("ids", expanding=True)))
_TOP = sa.select(sa.func.max(steps.c.seq)).where(_RUN)
_ORPHANS = sa.select(steps.c.seq, steps.c.parent_span_id).where(
    _RUN, steps.c.parent_seq.is_(None), steps.c.parent_span_id.in_(sa.bindparam("ids", expanding=True))
).limit(sa.bindparam("cap", type_=sa.Integer))
_VERDICT_ROWS = sa.select(*steps.c).where(_RUN, _OTLP, sa.text(f"({VERDICT_STEP})")).order_by(
    steps.c.seq).limit(VERDICT_ROWS + 1)
_ACTION = sa.select(*steps.c).where(_RUN, steps.c.name == sa.bindparam("name"), _OTLP,
                                    steps.c.step_type == sa.bindparam("step_type"))
_BEFORE = _ACTION.where(steps.c.ended_at <= sa.bindparam("t")).order_by(
    steps.c.ended_at.desc(), steps.c.seq.desc()).limit(1)
_AFTER = _ACTION.where(steps.c.ended_at > sa.bindparam("t")).order_by(steps.c.ended_at, steps.c.seq).limit(
    NEIGHBOUR_ROWS)
_PARENT = sa.select(steps.c.parent_seq, steps.c.meta).where(_RUN, steps.c.seq == sa.bindparam("seq"))


def stored_span_ids(conn: sa.Connection, run_id: str, span_ids: list[str]) -> set[str]:
    """Which of these span ids the run already holds."""
    return set(_span_seqs(conn, run_id, span_ids))


def read_stored(conn: sa.Connection, run_id: str, new: list[SpanRecord]) -> Stored:
    """Everything ``otlp_assemble.assemble`` needs of the stored run to add the ``new`` steps."""
    stored = Stored()
    top = conn.execute(_TOP, {"run_id": run_id}).scalar()
    if top is None:
        return stored
    stored.next_seq = top + 1
    new_ids = {s.span_id for s in new}
    stored.parents = _span_seqs(conn, run_id, sorted({s.parent_span_id for s in new if s.parent_span_id} - new_ids))
    for chunk in _chunks(sorted(new_ids)):
        cap = otlp_assemble.MAX_ADOPTED - len(stored.orphans)
        if cap <= 0:
            break
        stored.orphans += [(seq, parent) for seq, parent in conn.execute(
            _ORPHANS, {"run_id": run_id, "ids": chunk, "cap": cap})]
    rows = _records(conn, run_id, conn.execute(_VERDICT_ROWS, {"run_id": run_id}))
    stored.truncated = len(rows) > VERDICT_ROWS
    stored.rows = {r.seq: r for r in rows[:VERDICT_ROWS]}
    for (step_type, name), attempts in otlp_assemble.actions_to_link(new, stored).items():
        _read_neighbours(conn, {"run_id": run_id, "step_type": step_type, "name": name}, attempts, stored)
    return stored


def _span_seqs(conn: sa.Connection, run_id: str, span_ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for chunk in _chunks(span_ids):
        out.update((span_id, seq) for span_id, seq in conn.execute(_SPAN_IDS, {"run_id": run_id, "ids": chunk}))
    return out


def _read_neighbours(conn: sa.Connection, action: dict[str, str], attempts: list[SpanRecord], stored: Stored) -> None:
    run_id = action["run_id"]
    earliest = min(s.started_at for s in attempts)
    before = _records(conn, run_id, conn.execute(_BEFORE, {**action, "t": earliest}))
    after = _records(conn, run_id, conn.execute(_AFTER, {**action, "t": earliest}))
    stored.neighbours[(action["step_type"], action["name"])] = after
    found = before + after
    if len(after) == NEIGHBOUR_ROWS:
        # Crowded: the new attempts that start past the last one read get their previous attempt
        # one lookup each.
        horizon = after[-1].ended_at
        for s in attempts:
            if s.started_at > horizon:
                found += _records(conn, run_id, conn.execute(_BEFORE, {**action, "t": s.started_at}))
    for r in found:
        stored.rows.setdefault(r.seq, r)


def nested_agents(conn: sa.Connection, run_id: str, view: list[SpanRecord]) -> set[int]:
    """Of the view's agent steps in error, those with another agent step above them: their parents
    walked up by primary key (the view's own records first), at most ``MAX_DEPTH`` steps up."""
    known = {s.seq: (s.parent_seq, s.is_agent) for s in view}
    out: set[int] = set()
    for step in view:
        if not (step.error and step.is_agent):
            continue
        seq, hops = step.parent_seq, 0
        while seq is not None and hops < MAX_DEPTH:
            if seq not in known:
                row = conn.execute(_PARENT, {"run_id": run_id, "seq": seq}).first()
                if row is None:
                    break
                known[seq] = (row[0], is_agent(dict(row[1] or {})))
            parent, agent = known[seq]
            if agent:
                out.add(step.seq)
                break
            seq, hops = parent, hops + 1
    return out


def _records(conn: sa.Connection, run_id: str, result: Iterable[Any]) -> list[SpanRecord]:
    out = []
    for row in result:
        m = row._mapping
        meta = dict(m["meta"] or {})
        out.append(SpanRecord(
            run_id=run_id, span_id=m["span_id"], parent_span_id=m["parent_span_id"], step_type=m["step_type"],
            name=m["name"], started_at=m["started_at"], ended_at=m["ended_at"], latency_ms=m["latency_ms"],
            error=m["status"] == "error", error_class=m["error_class"], failure_code=m["failure_code"],
            explicit_attempt=None, agent_name=_text(meta.get("agent_name")), agent_version=None, meta=meta,
            dropped=m["meta_removed"],
            seq=m["seq"], parent_seq=m["parent_seq"], attempt=m["attempt"], retry_of_seq=m["retry_of_seq"]))
    return out


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _chunks(ids: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]
