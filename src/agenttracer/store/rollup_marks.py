"""Dirty marks: how a write tells the rollup refresher (``store/rollup_refresh.py``) which hours changed.

The writer (and retention) call these inside their own transaction, so a mark commits or rolls back
with the data it describes. Each call is one INSERT of the touched hours into ``rollup_dirty``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import sqlalchemy as sa

from agenttracer.store.run_state import RunState, current_start
from agenttracer.store.tables import rollup_dirty


def floor_hour(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def mark_dirty(conn: sa.Connection, hours: Iterable[datetime]) -> None:
    """Record, in the caller's transaction, that these hours' raw data changed (one INSERT)."""
    distinct = sorted({floor_hour(h) for h in hours})
    if distinct:
        conn.execute(sa.insert(rollup_dirty).values([{"hour": h} for h in distinct]))


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
            hours.extend(h for h in (old, new) if h is not None)
    mark_dirty(conn, hours)
