"""The runs list (keyset pagination), runs by id prefix, paged run detail, agents and ping, on ClickHouse.

The same answers as ``store/sql/read/runs.py`` (and its cursors, sealed by the same code): newest first
on ``(started_at, run_id)``, each run once, as its newest version says (``newest.latest_runs``).
"""

from __future__ import annotations

import json
from typing import Any

from agenttracer.model import UNIX_EPOCH
from agenttracer.store.agent_pages import assemble_agents
from agenttracer.store.clickhouse import run_keys
from agenttracer.store.clickhouse.newest import (
    Params,
    Queryable,
    at,
    fetch,
    from_micros,
    in_projects,
    latest_runs,
    latest_steps,
    micros,
    none_if_empty,
    us,
    where,
)
from agenttracer.store.clickhouse.read.newest_runs import newest_first
from agenttracer.store.cursors import Cursor
from agenttracer.store.filters import RunFilters

# The columns of a run in an answer (store/sql/read/runs.py RUN_DETAIL_COLUMNS), as selected here.
RUN_COLUMNS = ("run_id", "project", "agent_id", "agent_version", "environment", "status", "started_at",
               "ended_at", "duration_ms", "step_count", "error_step_count", "retry_count", "failure_type",
               "failure_code", "meta", "meta_removed", "root_span_id", "root_error", "source", "abandoned")
_TIMES = ("started_at", "ended_at")
STEP_COLUMNS = ("seq", "step_type", "name", "status", "started_at", "ended_at", "latency_ms", "attempt",
                "retry_of_seq", "parent_seq", "error_class", "failure_code", "meta", "meta_removed", "span_id",
                "parent_span_id")
_FAILURE_COLUMNS = ("failure_type", "failure_code", "failure_step_seq", "failure_message", "failure_recorded_at")


def _select(columns: tuple[str, ...]) -> str:
    return ", ".join(us(c) if c in _TIMES or c.endswith("_at") else c for c in columns)


def _run(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(RUN_COLUMNS, row, strict=True))
    for name in _TIMES:
        out[name] = from_micros(out[name])
    if out["started_at"] == UNIX_EPOCH:  # not known yet: the SQL store's NULL
        out["started_at"] = None
    for name in ("agent_id", "agent_version", "environment"):
        out[name] = none_if_empty(out[name])
    out["meta"] = json.loads(out["meta"]) if out["meta"] else {}
    out["abandoned"] = bool(out["abandoned"])
    if out["duration_ms"] is not None:
        out["duration_ms"] = float(out["duration_ms"])
    return out


def list_runs(
    client: Queryable, filters: RunFilters, *, limit: int, cursor: Cursor | None = None
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """Up to ``limit`` runs matching ``filters``, newest first, after ``cursor``; plus the next cursor."""
    params: Params = {}
    keyset: list[str] = []
    before: list[str] = []
    if cursor is not None:
        # A run whose start is not known is stored at the epoch (the sorting key has no NULL): last, by id.
        params["cur_t"] = micros(cursor.started_at or UNIX_EPOCH)
        params["cur_r"] = cursor.run_id
        # The plain bound is what the primary key's analysis can use; the tuple one is the keyset.
        before = [f"started_at <= {at('cur_t')}"]
        keyset += [*before, f"(started_at, run_id) < ({at('cur_t')}, {{cur_r:String}})"]
    rows = newest_first(client, filters, _select(RUN_COLUMNS), RUN_COLUMNS, params, limit + 1, keyset=keyset,
                        before=before, latest=params.get("cur_t"))
    items = [_run(row) for row in rows]
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    return items, Cursor(items[-1]["started_at"], items[-1]["run_id"])


def runs_with_prefix(client: Queryable, prefix: str, limit: int,
                     projects: tuple[str, ...] | None = None) -> list[str]:
    """Up to ``limit`` run ids of ``projects`` beginning with ``prefix`` (stored form), in id order."""
    params: Params = {"prefix": prefix, "limit": limit}
    scope = [*in_projects(projects, params), "startsWith(run_id, {prefix:String})", run_keys.PREFIX_KEYS]
    rows = fetch(client,
        f"SELECT run_id FROM {latest_runs(['run_id'], scope)} ORDER BY run_id LIMIT {{limit:UInt64}}", params)
    return [row[0] for row in rows]


def get_run(
    client: Queryable,
    run_id: str,
    *,
    steps_after: int = 0,
    steps_limit: int,
    projects: tuple[str, ...] | None = None,
) -> dict[str, Any] | None:
    """The run, one page of its steps in the run's order and its failure, as ``store/sql/read/runs.get_run``
    answers: steps by seq for an SDK run, by start time then seq for a run assembled from OTLP spans;
    ``next_steps_after`` the seq to pass back for the following page, None after the last one."""
    params: Params = {"run_id": run_id, "after": steps_after, "limit": steps_limit + 1}
    scope = [*in_projects(projects, params), "run_id = {run_id:String}"]
    columns = RUN_COLUMNS + _FAILURE_COLUMNS
    found = fetch(client, f"SELECT {_select(columns)} FROM {latest_runs(columns, [*scope, run_keys.RUN_KEYS])}",
                  params)
    if not found:
        return None
    row = found[0]
    run = _run(row[: len(RUN_COLUMNS)])
    failure_type, failure_code, step_seq, message, recorded = row[len(RUN_COLUMNS):]
    failure = None
    if failure_type is not None:
        failure = {"failure_type": failure_type, "failure_code": failure_code or "", "step_seq": step_seq,
                   "message": message, "recorded_at": from_micros(recorded)}
    # The steps' keys; and, which narrows the read while those are not known yet, the run's project, agent
    # (or '' for steps stored before its start arrived) and start (no step starts before its run): the
    # steps' sorting key starts (project, agent_id, hour).
    params.update(project=run["project"], agent=row[RUN_COLUMNS.index("agent_id")] or "",
                  start=micros(run["started_at"] or UNIX_EPOCH))
    scope += [run_keys.STEP_KEYS, "project = {project:String}", "agent_id IN ({agent:String}, '')",
              f"started_at >= {at('start')}"]
    steps = latest_steps(STEP_COLUMNS, scope)
    # A run's steps are all SDK steps or all OTLP spans (one writer per run: runs.source).
    if run["source"] == "otlp":
        order = "started_at, seq"
        page = ("(started_at, seq) > (SELECT started_at, seq FROM steps "
                f"WHERE {where(scope)} AND seq = {{after:UInt32}} ORDER BY version DESC LIMIT 1)")
        if not steps_after:
            page = "1"
    else:
        order, page = "seq", "seq > {after:UInt32}"
    rows = fetch(client, f"SELECT {_select(STEP_COLUMNS)} FROM {steps} AND {page} "
                        f"ORDER BY {order} LIMIT {{limit:UInt64}}", params)
    step_rows = [_step(r) for r in rows]
    next_after = None
    if len(step_rows) > steps_limit:
        del step_rows[steps_limit:]
        next_after = step_rows[-1]["seq"]
    return {"run": run, "steps": step_rows, "next_steps_after": next_after, "failure": failure}


def _step(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(STEP_COLUMNS, row, strict=True))
    for name in _TIMES:
        out[name] = from_micros(out[name])
    out["meta"] = json.loads(out["meta"]) if out["meta"] else {}
    out["latency_ms"] = float(out["latency_ms"])
    return out


def list_agents(client: Queryable, projects: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every agent of ``projects`` with its versions and environments, run counts and last-seen times,
    newest first, as ``store/sql/read/runs.list_agents`` answers."""
    params: Params = {}
    scope = [*in_projects(projects, params), "agent_id != ''"]
    rows = fetch(client,
        f"SELECT agent_id, agent_version, environment, count(), max({us('started_at')}) "
        f"FROM {latest_runs(('agent_id', 'agent_version', 'environment', 'started_at'), scope)} "
        "GROUP BY agent_id, agent_version, environment", params)
    # '' (a version or environment not known yet) is None in the SQL store's rows.
    return assemble_agents((agent_id, none_if_empty(version), none_if_empty(environment), int(count),
                            from_micros(last)) for agent_id, version, environment, count, last in rows)


def ping(client: Queryable) -> None:
    """Raise if the database cannot answer a trivial query on the runs table."""
    fetch(client, "SELECT count() FROM (SELECT run_id FROM runs LIMIT 1)")

