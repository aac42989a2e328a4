"""Stored self time (store/sql/rollup/attribution.py): the refresher stores each finished run's self time per
(step type, name) once; readers sum the stored rows of runs that have not changed since and compute the rest
from their steps, so the sums are the same before a refresh, after it, and after a late step made a run's
rows stale."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.model import UNIX_EPOCH
from agenttracer.store.self_time import self_times
from agenttracer.store.sql.rollup.attribution import attribute, attributed, self_time_sums
from agenttracer.store.sql.rollup.refresh import refresh
from agenttracer.store.sql.schema.tables import runs, step_self_time, steps
from agenttracer.store.sql.write.retention import prune
from tests.store.test_rollup import NOW, START, load, run_events, write


def _us(moment: datetime) -> int:
    return (moment - UNIX_EPOCH) // timedelta(microseconds=1)


def _by_run_and_name(conn: sa.Connection) -> dict[tuple[str, str, str], float]:
    """Self time per (run, type, name), computed here from the stored steps with the definition itself."""
    out: dict[tuple[str, str, str], float] = {}
    finished = conn.execute(
        sa.select(runs.c.run_id, runs.c.started_at, runs.c.ended_at).where(runs.c.status != "running")
    ).all()
    for run_id, started, ended in finished:
        rows = conn.execute(
            sa.select(steps.c.seq, steps.c.parent_seq, steps.c.started_at, steps.c.ended_at, steps.c.step_type,
                      steps.c.name).where(steps.c.run_id == run_id)
        ).all()
        times, _ = self_times(_us(started), _us(ended), [
            (r.seq, r.parent_seq, _us(r.started_at), _us(r.ended_at)) for r in rows
        ])
        for r, ms in zip(rows, times, strict=True):
            key = (run_id, r.step_type, r.name)
            out[key] = out.get(key, 0.0) + ms
    return out


def _stored(conn: sa.Connection) -> dict[tuple[str, str, str], float]:
    a = step_self_time
    return {(r[0], r[1], r[2]): r[3] for r in conn.execute(sa.select(a.c.run_id, a.c.step_type, a.c.name, a.c.self_ms))}


def _sums(engine: sa.Engine) -> dict[tuple[Any, ...], float]:
    with engine.connect() as conn:
        return self_time_sums(conn, [], [runs.c.agent_id])


def test_the_refresher_stores_each_finished_runs_self_time(engine: sa.Engine) -> None:
    load(engine, 40)
    in_flight = [e for e in run_events(random.Random(5), START + timedelta(hours=2)) if e["type"] != "run_end"]
    write(engine, in_flight)
    with engine.connect() as conn:
        assert _stored(conn) == {}
        expected = _by_run_and_name(conn)
    refresh(engine, now=NOW + timedelta(days=1))
    with engine.connect() as conn:
        stored = _stored(conn)
        running = set(conn.execute(sa.select(runs.c.run_id).where(runs.c.status == "running")).scalars())
        unattributed = conn.execute(sa.select(sa.func.count()).where(runs.c.status != "running", ~attributed()))
        assert unattributed.scalar() == 0
    assert expected and stored == pytest.approx(expected)
    assert running and not running & {run_id for run_id, _, _ in stored}


def test_stored_and_computed_sums_are_the_same(engine: sa.Engine) -> None:
    load(engine, 60, seed=3)
    computed = _sums(engine)  # nothing stored yet: every run computed from its steps
    with engine.begin() as conn:
        assert attribute(conn, []) > 0
        assert attribute(conn, []) == 0  # current rows are not recomputed
    assert _sums(engine) == pytest.approx(computed)


def test_a_late_step_makes_a_runs_rows_stale_until_the_next_refresh(engine: sa.Engine) -> None:
    events = run_events(random.Random(7), START + timedelta(hours=1), agent_id="late")
    if events[-1]["type"] != "run_end":
        events.append({"type": "run_end", "run_id": events[0]["run_id"], "status": "success",
                       "ended_at": events[-1].get("ended_at", events[0]["started_at"])})
    late = {"type": "step", "run_id": events[0]["run_id"], "seq": 90, "step_type": "tool", "name": "crm",
            "started_at": events[0]["started_at"], "ended_at": events[-1]["ended_at"], "latency_ms": 1.0,
            "status": "ok", "attempt": 1}
    write(engine, events)
    refresh(engine, now=NOW + timedelta(days=1))
    before = _sums(engine)
    write(engine, [late])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(~attributed(), runs.c.status != "running")).scalar() == 1
        expected = {(k[1], k[2]): v for k, v in _by_run_and_name(conn).items()}
    # Stale rows are not read: the run is computed from its steps, late step included.
    stale = _sums(engine)
    assert stale != pytest.approx(before)
    assert {k[1:]: v for k, v in stale.items()} == pytest.approx(expected)
    refresh(engine, now=NOW + timedelta(days=1))
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(~attributed(), runs.c.status != "running")).scalar() == 0
    assert _sums(engine) == pytest.approx(stale)


def test_deleting_runs_deletes_their_stored_self_time(engine: sa.Engine) -> None:
    load(engine, 20)
    refresh(engine, now=NOW + timedelta(days=1))
    with engine.connect() as conn:
        assert _stored(conn)
    prune(engine, timedelta(days=0.001), now=NOW + timedelta(days=30))
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar() == 0
        assert _stored(conn) == {}
