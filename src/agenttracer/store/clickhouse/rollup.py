"""The rollup refresher: recomputes the rollup rows of every (project, agent, hour) whose raw rows changed.

What the rollups hold and why they stay exact is in schema/migrations/v0002_rollups.py. A pass compares,
per (project, agent_id, hour) before the settle margin — a *unit* — the raw rows' count and newest
``version`` with what ``rollup_sources`` recorded; every unit that differs (written to, merged, pruned,
or new) is recomputed whole from the newest versions of its runs: its old identity rows retracted, its
new ones inserted, then its source stats recorded. The source stats are read before the rows are
aggregated, so a write landing in between leaves the unit looking changed to readers (they read it raw)
and to the next pass (it is recomputed again), never looking clean with numbers that miss it.

A run is counted in the hour and identity of its newest version; when a newer version moves it (a late
``run_start``), the writer's tombstone for the old key changes the old unit's rows too, so both units are
recomputed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from agenttracer.model import RunStatus
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.newest import FINAL_SETTINGS, Params, Queryable, at, fetch, latest_runs, micros

# A unit as one string: project, agent_id and the hour's epoch seconds, unit-separated.
UNIT = "concat(project, char(31), agent_id, char(31), toString(toUnixTimestamp(toStartOfHour(started_at))))"
STORED_UNIT = "concat(project, char(31), agent_id, char(31), toString(toUnixTimestamp(hour)))"
QUANTILES_DD = "quantilesDD(0.01, 0.5, 0.95, 0.99)"
RELATIVE_ACCURACY = 0.01
FINISHED = f"status != '{RunStatus.RUNNING.value}'"
TIMED = f"{FINISHED} AND duration_ms IS NOT NULL"
FAILURE_KEY = "concat(ifNull(failure_type, ''), ':', ifNull(failure_code, ''))"
UNITS_PER_PASS = 200
DEFAULT_SETTLE = timedelta(minutes=2)

# The rollup numbers of a group of runs' newest versions, in rollup_runs' column order.
AGGREGATES = (
    "count()",
    *[f"countIf(status = '{s.value}')" for s in RunStatus],
    "sum(step_count)", "sum(retry_count)", "countIf(retry_count > 0)",
    f"sumIf(ifNull(duration_ms, 0), {FINISHED})", f"countIf({TIMED})",
    "max(started_at)",
    f"sumMapIf(map({FAILURE_KEY}, toUInt64(1)), failure_type IS NOT NULL)",
    f"{QUANTILES_DD.replace('quantilesDD', 'quantilesDDStateIf')}(ifNull(duration_ms, 0), {TIMED})",
)
ROLLUP_COLUMNS = ("project", "agent_id", "agent_version", "environment", "hour", "runs",
                  *[s.value for s in RunStatus], "steps", "retry_steps", "runs_with_retries", "run_time_ms",
                  "timed", "last_started_at", "failures", "latency")
_RUN_COLUMNS = ("run_id", "project", "agent_id", "agent_version", "environment", "status", "started_at",
                "duration_ms", "step_count", "retry_count", "failure_type", "failure_code")

_last_version = 0


def _next_version() -> int:
    global _last_version
    _last_version = max(time.time_ns(), _last_version + 1)
    return _last_version


def source_stats(conn: Queryable, pre: Sequence[str], params: Params) -> dict[str, tuple[int, int]]:
    """Per unit of the raw rows matching ``pre``: how many rows (every version) and the newest version."""
    where = " AND ".join(pre) if pre else "1"
    return {u: (int(n), int(v)) for u, n, v in fetch(
        conn, f"SELECT {UNIT} AS u, count(), max(version) FROM runs WHERE {where} GROUP BY u", params)}


def stored_sources(conn: Queryable, pre: Sequence[str], params: Params) -> dict[str, tuple[int, int]]:
    """Per unit rolled up (matching ``pre``, on rollup_sources' columns): the source stats recorded."""
    where = " AND ".join(pre) if pre else "1"
    return {u: (int(n), int(v)) for u, n, v in fetch(
        conn, f"SELECT {STORED_UNIT} AS u, source_rows, source_version FROM rollup_sources FINAL WHERE {where}",
        params)}


def refresh(conn: Connection, *, now: datetime, settle: timedelta = DEFAULT_SETTLE,
            max_units: int | None = None) -> int:
    """Recompute every changed unit whose hour ended ``settle`` before ``now``; the number recomputed."""
    cutoff = (now - settle).replace(minute=0, second=0, microsecond=0)
    params: Params = {"cutoff": micros(cutoff)}
    raw = source_stats(conn, [f"started_at < {at('cutoff')}"], params)
    stored = stored_sources(conn, [f"hour < {at('cutoff')}"], params)
    stale = sorted(u for u in {*raw, *stored} if raw.get(u, (0, 0)) != stored.get(u))
    if max_units is not None:
        stale = stale[:max_units]
    for i in range(0, len(stale), UNITS_PER_PASS):
        _recompute(conn, stale[i: i + UNITS_PER_PASS], raw)
    return len(stale)


def _recompute(conn: Connection, units: list[str], raw: dict[str, tuple[int, int]]) -> None:
    retract, version = _next_version(), _next_version()
    params: Params = {"units": units}
    # Retract what the units held (a newer row of the same key outvotes the retraction below).
    columns = ", ".join(ROLLUP_COLUMNS)
    conn.command(
        f"INSERT INTO rollup_runs ({columns}, rolled_version, is_deleted) "
        f"SELECT {columns}, {retract}, 1 FROM rollup_runs FINAL WHERE {STORED_UNIT} IN {{units:Array(String)}}",
        params)
    newest = latest_runs(_RUN_COLUMNS, [f"{UNIT} IN {{units:Array(String)}}"])
    conn.command(
        f"INSERT INTO rollup_runs ({columns}, rolled_version, is_deleted) "
        f"SELECT project, agent_id, agent_version, environment, toStartOfHour(started_at) AS h, "
        f"{', '.join(AGGREGATES)}, {version}, 0 FROM {newest} "
        "GROUP BY project, agent_id, agent_version, environment, h",
        params, FINAL_SETTINGS)
    rows = []
    for unit in units:
        project, agent_id, hour = unit.split("\x1f")
        n, newest_version = raw.get(unit, (0, 0))
        rows.append((project, agent_id, int(hour), n, newest_version, version))
    conn.insert("rollup_sources", ("project", "agent_id", "hour", "source_rows", "source_version", "rolled_version"),
                rows)
