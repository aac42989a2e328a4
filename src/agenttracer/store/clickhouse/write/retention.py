"""Retention and project deletion on ClickHouse: whole runs (with their steps and failure) go.

The rules are ``store/sql/write/retention.py``'s: a run's age is its ``started_at`` (a placeholder's is
the earliest event it holds, never NULL here), a prune is per project when asked, ``delete_project``
removes the runs, unbinds the keys (revoking keys left bound to nothing) and the project's row last, so
an interrupted delete can be run again.

How: a prune of every project drops whole monthly partitions that lie entirely before the cut-off
(``ALTER TABLE … DROP PARTITION``: no rewrite); what remains — and a prune of one project, and a
deleted project — goes by lightweight ``DELETE`` (rows are masked at once and purged by merges).
Steps go before their runs, so an interruption never leaves steps whose run is gone. A step never
starts before its run (the writer keeps a run's start the earliest event), so a step partition whose
newest step is older than the cut-off holds only steps of runs older than the cut-off.

The steps, and then their keys (``step_keys``), go by the runs found in ``run_keys`` (schema v0006), not
in ``runs``: ``run_keys`` is not partitioned, so it still holds the runs whose partition was just dropped,
whose steps may lie in a newer month's partition that stays. A run has a key older than the cut-off
exactly when its start is (a run's start only moves earlier). The runs' keys go last. An interruption
leaves at most keys of rows already gone, where readers find nothing, and the next prune finishes the
work: it goes on while old runs have keys, even when their run rows are gone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.keys import unbind_project
from agenttracer.store.clickhouse.projects import forget_project, list_projects
from agenttracer.store.records import Deleted, PruneResult

_SYNC = {"lightweight_deletes_sync": 2, "mutations_sync": 2}


def _scope(project: str | None) -> tuple[str, dict[str, Any]]:
    if project is None:
        return "1", {}
    return "project = {project:String}", {"project": project}


def _count(conn: Connection, run_where: str, params: dict[str, Any]) -> tuple[int, int, int, int]:
    """Runs, steps and failures (newest versions, tombstones left out) of the runs matching ``run_where``,
    and how many of those runs still have keys (``run_keys``). The steps are found by the keys: a prune
    interrupted after it dropped old partitions left the runs' keys and the steps they have in a newer
    month, with no run row."""
    runs = conn.query(
        "SELECT count(), countIf(failure_type IS NOT NULL) FROM ("
        f" SELECT failure_type, is_deleted FROM runs WHERE {run_where} ORDER BY version DESC LIMIT 1 BY run_id"
        ") WHERE is_deleted = 0",
        params,
    ).rows[0]
    steps = conn.query(
        "SELECT count() FROM ("
        " SELECT is_deleted FROM steps"
        f" WHERE run_id IN (SELECT run_id FROM run_keys WHERE {run_where}) AND {_scope_of_steps(params)}"
        " ORDER BY version DESC LIMIT 1 BY run_id, seq"
        ") WHERE is_deleted = 0",
        params,
    ).rows[0]
    keyed = conn.query(f"SELECT uniqExact(run_id) FROM run_keys WHERE {run_where}", params).rows[0]
    return int(runs[0]), int(steps[0]), int(runs[1]), int(keyed[0])


def _scope_of_steps(params: dict[str, Any]) -> str:
    return "project = {project:String}" if "project" in params else "1"


def prune(
    conn: Connection,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    project: str | None = None,
) -> PruneResult:
    """Delete runs that started before ``now - older_than`` (of ``project`` only when given)."""
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    cutoff = (now or datetime.now(timezone.utc)) - older_than
    scope, params = _scope(project)
    params["cutoff"] = cutoff
    old = f"{scope} AND started_at < {{cutoff:DateTime64(6, 'UTC')}}"
    n_runs, n_steps, n_failures, n_keyed = _count(conn, old, params)
    if dry_run or should_stop() or not (n_runs or n_keyed):
        return PruneResult(cutoff, n_runs, n_steps, n_failures, 0, dry_run=dry_run)
    if project is None:
        _drop_old_partitions(conn, cutoff)
    for table in ("steps", "step_keys"):
        conn.command(
            f"DELETE FROM {table} WHERE {_scope_of_steps(params)} "
            f"AND run_id IN (SELECT run_id FROM run_keys WHERE {old})",
            params,
            _SYNC,
        )
    for table in ("runs", "run_keys"):
        conn.command(f"DELETE FROM {table} WHERE {old}", params, _SYNC)
    return PruneResult(cutoff, n_runs, n_steps, n_failures, 1, dry_run=False)


def _drop_old_partitions(conn: Connection, cutoff: datetime) -> None:
    """Drop the monthly partitions of steps, then runs, whose newest row is older than ``cutoff``."""
    for table in ("steps", "runs"):
        rows = conn.query(
            f"SELECT _partition_id FROM {table} GROUP BY _partition_id"
            " HAVING max(started_at) < {cutoff:DateTime64(6, 'UTC')}",
            {"cutoff": cutoff},
        ).rows
        for (partition_id,) in rows:
            if not str(partition_id).isalnum():  # it becomes SQL text: a partition id is YYYYMM
                raise ValueError(f"unexpected partition id {partition_id!r}")
            conn.command(f"ALTER TABLE {table} DROP PARTITION ID '{partition_id}'")


def retention_days_by_project(conn: Connection, default_days: int | None) -> dict[str, int]:
    """Each project's retention: its own ``retention_days``, else ``default_days``; projects kept for
    ever are left out."""
    out = {p.slug: p.retention_days or default_days for p in list_projects(conn)}
    return {slug: days for slug, days in out.items() if days}


def delete_project(conn: Connection, slug: str) -> Deleted | None:
    """Delete ``slug`` and everything in it; None when there is no such project."""
    if not list_projects(conn, frozenset({slug})):
        return None
    params = {"project": slug}
    n_runs, n_steps, n_failures, _ = _count(conn, "project = {project:String}", params)
    for table in ("steps", "step_keys", "runs", "run_keys"):
        conn.command(f"DELETE FROM {table} WHERE project = {{project:String}}", params, _SYNC)
    revoked = unbind_project(conn, slug)
    forget_project(conn, slug)
    return Deleted(n_runs, n_steps, n_failures, revoked)
