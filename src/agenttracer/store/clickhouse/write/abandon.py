"""The abandoned-run sweep on ClickHouse: the rules of ``store/sql/write/abandon.py`` (its docstring says
what a pass closes and why), without an UPDATE.

A pass finds the running runs whose newest version was written before the cutoff (``updated_at`` is
the server's clock at the run's last change), re-reads each batch of them under this process's run
locks (a batch of the writer in this process cannot interleave), and writes a closed version of each:
``failure``, ``abandoned``, ended at the latest event the run holds (its start, its steps' ends, its
recorded failure), with the failure ``orchestration`` / ``abandoned`` unless the agent recorded one.
A late event reopens the run (``run_state.reopen_abandoned``, applied by the writer).

Across processes nothing is locked: an event written by another process between this pass's read
and its write of a run is outvoted by the closed version (newer), until the run's next event. The
window is the few milliseconds of one batch, for a run silent for the whole timeout.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from agenttracer.model import ABANDONED_CODE, RunStatus
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.write.rows import insert_runs, newest_runs, next_version, run_values
from agenttracer.store.clickhouse.write.writer import run_locks
from agenttracer.store.records import SWEEP_BATCH_SIZE, SWEEP_MAX_BATCHES, Closed, SweepResult
from agenttracer.store.run_state import ABANDONED_TYPE

log = logging.getLogger("agenttracer.sweep")

BATCH_SIZE = SWEEP_BATCH_SIZE
MAX_BATCHES = SWEEP_MAX_BATCHES

# The newest version of each run that any version says was running and quiet before the cutoff.
_CANDIDATES = """
SELECT run_id FROM (
    SELECT run_id, argMax(status, version) AS st, argMax(updated_at, version) AS up,
           argMax(is_deleted, version) AS gone
    FROM runs
    WHERE run_id IN (SELECT run_id FROM runs WHERE status = 'running' AND updated_at < {cutoff:DateTime64(6, 'UTC')})
    GROUP BY run_id
)
WHERE st = 'running' AND up < {cutoff:DateTime64(6, 'UTC')} AND gone = 0
ORDER BY up, run_id
LIMIT {limit:UInt32}
"""

_LAST_STEP_END = """
SELECT run_id, max(ended_at) FROM (
    SELECT run_id, ended_at, is_deleted FROM steps
    WHERE project = {project:String} AND run_id IN {ids:Array(String)} AND started_at >= {since:DateTime64(6, 'UTC')}
    ORDER BY version DESC LIMIT 1 BY run_id, seq
)
WHERE is_deleted = 0
GROUP BY run_id
"""


def sweep(
    conn: Connection,
    timeout: timedelta,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    should_stop: Callable[[], bool] = lambda: False,
) -> SweepResult:
    """Close running runs with no new event since ``now - timeout``: at most ``batch_size`` runs per
    batch and ``max_batches`` batches (a pass that closes fewer than that found them all)."""
    if timeout <= timedelta(0):
        raise ValueError("the run timeout must be positive")
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    result = SweepResult(cutoff=now - timeout)
    while result.batches < max_batches and not should_stop():
        ids = [row[0] for row in conn.query(_CANDIDATES, {"cutoff": result.cutoff, "limit": batch_size}).rows]
        if not ids:
            break
        with run_locks(ids):
            closed = close_batch(conn, ids, result.cutoff, now)
        result.batches += 1
        result.closed += closed
        if len(ids) < batch_size:
            break
    result.seconds = time.perf_counter() - started
    return result


def close_batch(conn: Connection, run_ids: list[str], cutoff: datetime, now: datetime) -> list[Closed]:
    """Close those of ``run_ids`` that are still running and quiet (read again now); return them in the
    order of ``run_ids`` (the quietest first, as the candidates were chosen)."""
    found = newest_runs(conn, run_ids)
    quiet = [
        row
        for row in (found[run_id] for run_id in run_ids if run_id in found)
        if row["status"] == RunStatus.RUNNING.value and row["updated_at"] < cutoff
    ]
    if not quiet:
        return []
    ends: dict[str, datetime] = {}
    for project in {row["project"] for row in quiet}:
        mine = [row for row in quiet if row["project"] == project]
        params = {"project": project, "ids": [r["run_id"] for r in mine], "since": min(r["started_at"] for r in mine)}
        ends.update(dict(conn.query(_LAST_STEP_END, params).rows))
    version = next_version()
    rows, closed = [], []
    for row in quiet:
        last = max(t for t in (row["started_at"], ends.get(row["run_id"]), row["failure_recorded_at"]) if t)
        row.update(status=RunStatus.FAILURE.value, abandoned=True, ended_at=last)
        if row["failure_type"] is None:
            row.update(failure_type=ABANDONED_TYPE, failure_code=ABANDONED_CODE, failure_step_seq=None,
                       failure_message=None, failure_recorded_at=last)  # fmt: skip
        rows.append(run_values(row, version, now))
        closed.append(Closed(row["run_id"], row["project"], row["agent_id"], row["agent_version"],
                             row["environment"], row["failure_type"], row["failure_code"]))  # fmt: skip
    insert_runs(conn, rows, uuid.uuid4().hex)
    return closed
