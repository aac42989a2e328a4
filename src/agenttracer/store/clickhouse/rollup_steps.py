"""The step half of the rollup refresher: stored self time per finished run, and ``rollup_steps`` per unit.

The tables are schema/migrations/v0004_step_rollups.py's. ``recompute`` runs for the units the refresher
(store/clickhouse/rollup.py) recomputes, after their run rows: first the self time of each finished run of
those units that has none stored for its newest version (its step intervals come to Python once and go
through the one definition, ``self_times``), then the units' rows of ``rollup_steps`` from the newest
versions of their runs' steps — counted in the hour and identity of the run, as on the SQL store — with the
stored self time summed in and the latencies counted per bucket of the SQL store's histogram.
``unattributed_self_time`` is the same computation for a reader's raw part: the runs the refresher has not
attributed yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agenttracer.model import RunStatus, StepStatus
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.histogram import counts_sql, with_bounds
from agenttracer.store.clickhouse.newest import (
    FINAL_SETTINGS,
    STORED_UNIT,
    UNIT,
    Params,
    Queryable,
    at,
    fetch,
    latest_runs,
    latest_steps,
    us,
)
from agenttracer.store.self_time import self_times

# A run whose duration is attributed: finished, with both ends and at least one step.
TIMED_RUN = (f"status != '{RunStatus.RUNNING.value}' AND duration_ms IS NOT NULL AND ended_at IS NOT NULL "
             "AND step_count > 0")
# The per-step numbers of a group of steps (columns of the newest step versions): steps, errors, retries
# (attempt > 1), summed latency, summed latency of retries, the latency histogram (under ``with_bounds()``).
STEP_AGGREGATES = (
    "count() AS steps", f"countIf(status = '{StepStatus.ERROR.value}') AS errors",
    "countIf(attempt > 1) AS retries", "sum(latency_ms) AS step_ms",
    "sumIf(latency_ms, attempt > 1) AS retry_ms", f"{counts_sql('latency_ms')} AS latency_buckets",
)
STEP_COLUMNS = ("project", "agent_id", "agent_version", "environment", "hour", "step_type", "name", "steps",
                "errors", "retries", "latency_ms", "retry_latency_ms", "self_ms", "latency_buckets")
SELF_COLUMNS = ("project", "agent_id", "hour", "run_id", "step_type", "name", "self_ms", "run_version")
_STEP_READ = ("run_id", "seq", "step_type", "name", "status", "attempt", "latency_ms", "parent_seq", "started_at",
              "ended_at")
_OUT = {"latency_ms": "a.step_ms", "retry_latency_ms": "a.retry_ms", "self_ms": "b.own_ms"}
RUN_READ = ("run_id", "project", "agent_id", "agent_version", "environment", "started_at", "ended_at", "status",
            "duration_ms", "step_count", "version")


def aliased(from_text: str) -> str:
    """A FROM text of ``newest`` (a subquery and its WHERE) as one subquery, which an alias can name."""
    return f"(SELECT * FROM {from_text})"


def current_self_time(runs_from: str, self_where: Sequence[str]) -> str:
    """The stored self time rows (run_id, step_type, name, self_ms) of the runs of ``runs_from`` (newest run
    versions with ``RUN_READ``) computed from their newest version; ``self_where`` narrows step_self_time
    on its sorting key to where those runs' rows are (their units)."""
    pre = [*self_where, f"(run_id, run_version) IN (SELECT run_id, version FROM {runs_from})"]
    return f"(SELECT run_id, step_type, name, self_ms FROM step_self_time FINAL WHERE {' AND '.join(pre)}) WHERE 1"


def steps_of(runs_from: str, scope: Sequence[str], first: str) -> str:
    """The newest versions of the steps of the runs of ``runs_from`` (``scope`` narrows the steps on their
    sorting key; ``first`` bounds their start from below: no step starts before its run)."""
    return latest_steps(_STEP_READ, [*scope, f"started_at >= {first}", f"run_id IN (SELECT run_id FROM {runs_from})"])


def intervals(q: Queryable, runs_from: str, scope: Sequence[str], first: str, self_where: Sequence[str],
              params: Params) -> list[tuple[Any, ...]]:
    """The step intervals of the timed runs of ``runs_from`` without current stored self time, a run's rows
    together: run_id, seq, parent_seq, start, end (µs), step_type, name, then the run's start, end (µs),
    project, agent_id, hour (epoch s) and version."""
    todo = (f"(SELECT run_id, {us('started_at')} AS rs, {us('ended_at')} AS re, project, agent_id, "
            f"toUnixTimestamp(toStartOfHour(started_at)) AS h, version FROM {runs_from} AND {TIMED_RUN} "
            "AND (run_id, version) NOT IN (SELECT run_id, run_version FROM step_self_time FINAL WHERE "
            f"{' AND '.join(self_where)}))")
    steps = latest_steps(("run_id", "seq", "parent_seq", "started_at", "ended_at", "step_type", "name"),
                         [*scope, f"started_at >= {first}", f"run_id IN (SELECT run_id FROM {todo})"])
    return fetch(q,
        f"SELECT s.run_id, s.seq, s.parent_seq, {us('s.started_at')}, {us('s.ended_at')}, s.step_type, s.name, "
        f"t.rs, t.re, t.project, t.agent_id, t.h, t.version FROM {aliased(steps)} AS s INNER JOIN {todo} AS t "
        "ON s.run_id = t.run_id ORDER BY s.run_id", params)


def attribute(rows: Sequence[Sequence[Any]]) -> dict[tuple[Any, ...], float]:
    """Self time summed by (run_id, step_type, name) over ``intervals`` rows."""
    sums: dict[tuple[Any, ...], float] = {}
    i, n = 0, len(rows)
    while i < n:
        run_id = rows[i][0]
        j = i
        while j < n and rows[j][0] == run_id:
            j += 1
        group = rows[i:j]
        times, _untraced = self_times(int(group[0][7]), int(group[0][8]), [
            (int(r[1]), None if r[2] is None else int(r[2]), int(r[3]), int(r[4])) for r in group])
        for row, ms in zip(group, times, strict=True):
            key = (run_id, row[5], row[6])
            sums[key] = sums.get(key, 0.0) + ms
        i = j
    return sums


def unattributed_self_time(q: Queryable, runs_from: str, scope: Sequence[str], first: str,
                           self_where: Sequence[str], params: Params) -> dict[tuple[str, str], float]:
    """Self time by (step_type, name) of the timed runs of ``runs_from`` the refresher has not attributed."""
    out: dict[tuple[str, str], float] = {}
    for (_run, step_type, name), ms in attribute(intervals(q, runs_from, scope, first, self_where, params)).items():
        out[(step_type, name)] = out.get((step_type, name), 0.0) + ms
    return out


def recompute(conn: Connection, units: list[str], retract: int, version: int) -> None:
    """Store the units' missing self time, then replace their ``rollup_steps`` rows (``retract``: the
    retraction's rolled_version, ``version`` the new rows')."""
    parts = [u.split("\x1f") for u in units]
    params: Params = {"units": units, "first": min(int(p[2]) for p in parts) * 1_000_000,
                      "unit_projects": sorted({p[0] for p in parts}), "unit_agents": sorted({p[1] for p in parts})}
    scope = ["project IN {unit_projects:Array(String)}", "agent_id IN {unit_agents:Array(String)}"]
    runs_from = latest_runs(RUN_READ, [f"{UNIT} IN {{units:Array(String)}}"])
    first = at("first")
    self_where = [*scope, f"{STORED_UNIT} IN {{units:Array(String)}}"]
    rows = intervals(conn, runs_from, scope, first, self_where, params)
    meta = {r[0]: r[9:13] for r in rows}
    conn.insert("step_self_time", SELF_COLUMNS, [
        (meta[run_id][0], meta[run_id][1], int(meta[run_id][2]), run_id, step_type, name, ms, int(meta[run_id][3]))
        for (run_id, step_type, name), ms in attribute(rows).items()])
    # Rows of runs that left the units or changed since they were computed: retracted.
    columns = ", ".join(SELF_COLUMNS)
    conn.command(
        f"INSERT INTO step_self_time ({columns}, is_deleted) SELECT {columns}, 1 FROM step_self_time FINAL "
        f"WHERE {STORED_UNIT} IN {{units:Array(String)}} AND (run_id, run_version) NOT IN "
        f"(SELECT run_id, version FROM {runs_from})", params, FINAL_SETTINGS)
    step_columns = ", ".join(STEP_COLUMNS)
    conn.command(
        f"INSERT INTO rollup_steps ({step_columns}, rolled_version, is_deleted) SELECT {step_columns}, {retract}, 1 "
        f"FROM rollup_steps FINAL WHERE {STORED_UNIT} IN {{units:Array(String)}}", params, FINAL_SETTINGS)
    keys = ("r.project AS project, r.agent_id AS agent_id, r.agent_version AS agent_version, "
            "r.environment AS environment, r.h AS hour, s.step_type AS step_type, s.name AS name")
    by_run = (f"(SELECT run_id, project, agent_id, agent_version, environment, toStartOfHour(started_at) AS h "
              f"FROM {runs_from}) AS r")
    group = "project, agent_id, agent_version, environment, hour, step_type, name"
    counted = (f"{with_bounds()} SELECT {keys}, {', '.join(STEP_AGGREGATES)} "
               f"FROM {aliased(steps_of(runs_from, scope, first))} AS s INNER JOIN {by_run} ON s.run_id = r.run_id "
               f"GROUP BY {group}")
    own = (f"SELECT {keys}, sum(s.self_ms) AS own_ms FROM {aliased(current_self_time(runs_from, self_where))} AS s "
           f"INNER JOIN {by_run} ON s.run_id = r.run_id GROUP BY {group}")
    conn.command(
        f"INSERT INTO rollup_steps ({step_columns}, rolled_version, is_deleted) "
        f"SELECT {', '.join(_OUT.get(c, f'a.{c}') for c in STEP_COLUMNS)}, {version}, 0 "
        f"FROM ({counted}) AS a LEFT JOIN ({own}) AS b USING ({group})",
        params, FINAL_SETTINGS)
