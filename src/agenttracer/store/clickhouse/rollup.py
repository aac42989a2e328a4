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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from agenttracer.model import RunStatus
from agenttracer.store.clickhouse import rollup_days, rollup_steps
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.histogram import bucket_sql, with_bounds
from agenttracer.store.clickhouse.newest import (
    FINAL_SETTINGS,
    HOUR_US,
    STORED_UNIT,
    UNIT,
    Params,
    Queryable,
    at,
    fetch,
    latest_runs,
    micros,
    us,
)

FINISHED = f"status != '{RunStatus.RUNNING.value}'"
TIMED = f"{FINISHED} AND duration_ms IS NOT NULL"
FAILURE_KEY = "concat(ifNull(failure_type, ''), ':', ifNull(failure_code, ''))"
UNITS_PER_PASS = 200
# A pass brings the step intervals of its runs to Python for their self time (tens of KB a run at peak),
# so it is bounded by runs as well as units: 200 units of a busy agent can hold ~400 k runs, past 20 GB.
RUNS_PER_PASS = 20_000
DEFAULT_SETTLE = timedelta(minutes=2)

# The rollup numbers of a group of runs' newest versions, in rollup_runs' column order (under
# ``histogram.with_bounds()``: the run latency is counted per bucket of the SQL store's histogram).
AGGREGATES = (
    "count()",
    *[f"countIf(status = '{s.value}')" for s in RunStatus],
    "sum(step_count)", "sum(retry_count)", "countIf(retry_count > 0)",
    f"sumIf(ifNull(duration_ms, 0), {FINISHED})", f"countIf({TIMED})",
    "max(started_at)",
    f"sumMapIf(map({FAILURE_KEY}, toUInt64(1)), failure_type IS NOT NULL)",
    f"sumMapIf(map({bucket_sql('ifNull(duration_ms, 0)')}, toUInt64(1)), {TIMED})",
)
ROLLUP_COLUMNS = ("project", "agent_id", "agent_version", "environment", "hour", "runs",
                  *[s.value for s in RunStatus], "steps", "retry_steps", "runs_with_retries", "run_time_ms",
                  "timed", "last_started_at", "failures", "latency_buckets")
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


@dataclass(frozen=True)
class Freshness:
    """How a window is read: the units (project, agent_id, hour) of ``clean`` from their hourly rollup rows, the
    days (project, agent_id, day; rollup_days.py) of ``days`` from their daily rows, the units of ``dirty`` and
    the window's partial hours raw. A unit of a day of ``days`` is in neither list. ``raw_from`` (µs) is the
    earliest start of a run read raw (None: none is), a lower bound of its steps' starts. ``attributed``: every
    run read raw is in a clean unit, so the refresher has stored the self time of each of its finished ones.
    ``edge_reach`` (µs): no step of a run of the window's first partial hour starts later (None: unknown, or no
    such hour); ``later_from`` (µs): the earliest start of every other run read raw (None: none)."""

    clean: list[str]
    dirty: list[str]
    days: list[str]
    raw_from: int | None
    attributed: bool
    edge_reach: int | None = None
    later_from: int | None = None


def freshness(q: Queryable, scope: Sequence[str], params: Params, window: tuple[int, int], hours: tuple[int, int],
              days: tuple[int, int] | None = None) -> Freshness:
    """The units of the window [start, end) (µs) matching ``scope`` (conditions on the project and agent): those of
    its whole hours ``hours`` (µs) each clean when its rollup rows were computed from the raw rows there now; and,
    for the whole days of ``days`` ([start, end) in epoch seconds), those whose daily rows stand for their hours'
    raw rows now. One statement (``params`` gets its parameters)."""
    params["fresh_from"], params["fresh_to"] = window
    params["h0"], params["h1"] = hours
    # Whole hours, the edges' too: an edge unit is clean only by the count of its whole hour.
    params["scan_from"], params["scan_to"] = window[0] - window[0] % HOUR_US, -(-window[1] // HOUR_US) * HOUR_US
    stored = " AND ".join([*scope, f"hour >= {at('scan_from')}", f"hour < {at('scan_to')}"])
    inside = f"started_at >= {at('fresh_from')} AND started_at < {at('fresh_to')}"
    # The whole hours grouped by exactly the key and aggregates of the runs table's ``unit_stats`` projection
    # (schema v0008), so the engine reads a row per unit there instead of every run; the partial edge hours,
    # which need the runs inside the window apart, from the runs themselves.
    hour_of = "toStartOfHour(started_at)"
    in_hours = " AND ".join([*scope, f"{hour_of} >= {at('h0')}", f"{hour_of} < {at('h1')}"])
    counted = [f"SELECT project, agent_id, hh, n, v, n AS w, m FROM (SELECT project, agent_id, {hour_of} AS hh, "
               f"count() AS n, max(version) AS v, min(started_at) AS m FROM runs WHERE {in_hours} "
               "GROUP BY project, agent_id, hh)"]
    partial = [f"started_at >= {at(lo)} AND started_at < {at(hi)}"
             for lo, hi, empty in (("scan_from", "h0", params["scan_from"] >= hours[0]),
                                   ("h1", "scan_to", hours[1] >= params["scan_to"])) if not empty]
    if partial:
        counted.append(f"SELECT project, agent_id, {hour_of} AS hh, count() AS n, max(version) AS v, "
                       f"countIf({inside}) AS w, minIf(started_at, {inside}) AS m FROM runs "
                       f"WHERE {' AND '.join([*scope, '(' + ' OR '.join(partial) + ')'])} "
                       "GROUP BY project, agent_id, hh")
    day_join = "0"
    if days is not None:
        day_join = "d.signature"
        params["days_from"], params["days_to"] = days
    rows = fetch(q,
        f"SELECT r.project, r.agent_id, r.h, r.n, r.v, r.n = s.source_rows AND r.v = s.source_version, {day_join}, "
        "r.m, r.w, s.step_reach_us FROM (SELECT project, agent_id, toUnixTimestamp(hh) AS h, "
        f"toUnixTimestamp(toStartOfDay(hh)) AS dd, n, v, w, {us('m')} AS m FROM ({' UNION ALL '.join(counted)})) AS r "
        "LEFT JOIN (SELECT project, agent_id, "
        f"toUnixTimestamp(hour) AS h, source_rows, source_version, step_reach_us FROM rollup_sources FINAL "
        f"WHERE {stored}) AS s "
        "ON r.project = s.project AND r.agent_id = s.agent_id AND r.h = s.h"
        + ("" if days is None else
           " LEFT JOIN (SELECT project, agent_id, toUnixTimestamp(day) AS dd, signature FROM rollup_days FINAL WHERE "
           + " AND ".join([*scope, "day >= toDateTime({days_from:UInt32}, 'UTC')",
                           "day < toDateTime({days_to:UInt32}, 'UTC')"])
           + ") AS d ON r.project = d.project AND r.agent_id = d.agent_id AND r.dd = d.dd"), params)
    by_day: dict[str, tuple[int, list[tuple[int, int, int]], list[str]]] = {}
    clean: dict[str, int] = {}
    dirty: dict[str, int] = {}
    edges: list[int] = []
    settled = True
    h0_s, h1_s = hours[0] // 1_000_000, hours[1] // 1_000_000
    first_edge: list[int | None] = []  # the step reach of each unit of the window's first partial hour
    later: list[int] = []  # the earliest start of the last partial hour's units
    for project, agent_id, hour, n, v, is_clean, day_signature, earliest, in_window, reach in rows:
        if not in_window:
            continue
        if not h0_s <= int(hour) < h1_s:  # a partial hour at the window's edge: raw
            edges.append(int(earliest))
            settled = settled and bool(is_clean)
            if int(hour) < h0_s:
                first_edge.append(int(reach) if is_clean and int(reach) else None)
            else:
                later.append(int(earliest))
            continue
        unit = f"{project}\x1f{agent_id}\x1f{int(hour)}"
        day = rollup_days.day_of(int(hour))
        if days is not None and days[0] <= day < days[1]:
            _sig, in_day, units = by_day.setdefault(f"{project}\x1f{agent_id}\x1f{day}", (int(day_signature), [], []))
            in_day.append((int(hour), int(n), int(v)))
            units.append(unit)
        (clean if is_clean else dirty)[unit] = int(earliest)
    whole = {key: units for key, (sig, in_day, units) in by_day.items() if sig == rollup_days.signature(in_day)}
    in_days = {u for units in whole.values() for u in units}
    read_raw = {u: m for u, m in dirty.items() if u not in in_days}
    reaches = [r for r in first_edge if r is not None]
    return Freshness(clean=sorted(u for u in clean if u not in in_days), dirty=sorted(read_raw), days=sorted(whole),
                     raw_from=min([*edges, *read_raw.values()], default=None), attributed=settled and not read_raw,
                     edge_reach=max(reaches) if first_edge and len(reaches) == len(first_edge) else None,
                     later_from=min([*later, *read_raw.values()], default=None))


class Refreshed(NamedTuple):
    units: int  # (project, agent, hour) units recomputed
    days: int  # days whose daily rows were rebuilt


def refresh(conn: Connection, *, now: datetime, settle: timedelta = DEFAULT_SETTLE,
            max_units: int | None = None) -> Refreshed:
    """Recompute every changed unit whose hour ended ``settle`` before ``now``, then the days those changed
    (rollup_days.py)."""
    cutoff = (now - settle).replace(minute=0, second=0, microsecond=0)
    params: Params = {"cutoff": micros(cutoff)}
    raw = source_stats(conn, [f"started_at < {at('cutoff')}"], params)
    stored = stored_sources(conn, [f"hour < {at('cutoff')}"], params)
    stale = sorted(u for u in {*raw, *stored} if raw.get(u, (0, 0)) != stored.get(u))
    if max_units is not None:
        stale = stale[:max_units]
    for units in passes(stale, raw):
        _recompute(conn, units, raw)
    days = rollup_days.refresh(conn, cutoff, _next_version(), _next_version())
    return Refreshed(len(stale), days)


def passes(units: Sequence[str], raw: dict[str, tuple[int, int]]) -> Iterator[list[str]]:
    """``units`` in order, in passes of at most UNITS_PER_PASS units holding at most RUNS_PER_PASS raw rows
    (``raw``: per unit, its rows and newest version); a unit with more rows than that is a pass alone."""
    batch: list[str] = []
    rows = 0
    for unit in units:
        n = raw.get(unit, (0, 0))[0]
        if batch and (len(batch) >= UNITS_PER_PASS or rows + n > RUNS_PER_PASS):
            yield batch
            batch, rows = [], 0
        batch.append(unit)
        rows += n
    if batch:
        yield batch


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
        f"{with_bounds()} SELECT project, agent_id, agent_version, environment, toStartOfHour(started_at) AS h, "
        f"{', '.join(AGGREGATES)}, {version}, 0 FROM {newest} "
        "GROUP BY project, agent_id, agent_version, environment, h",
        params, FINAL_SETTINGS)
    rollup_steps.recompute(conn, units, retract, version)
    reach = _step_reach(conn, units)
    rows = []
    for unit in units:
        project, agent_id, hour = unit.split("\x1f")
        n, newest_version = raw.get(unit, (0, 0))
        rows.append((project, agent_id, int(hour), n, newest_version, version,
                     max(reach.get(unit, 0), int(hour) * 1_000_000)))
    conn.insert("rollup_sources", ("project", "agent_id", "hour", "source_rows", "source_version", "rolled_version",
                                   "step_reach_us"), rows)


def _step_reach(conn: Queryable, units: list[str]) -> dict[str, int]:
    """Per unit, the latest start (µs) of a step of its runs, every version of both (an upper bound of the newest
    versions' steps)."""
    parts = [u.split("\x1f") for u in units]
    params: Params = {"units": units, "first": min(int(p[2]) for p in parts) * 1_000_000,
                      "unit_projects": sorted({p[0] for p in parts}), "unit_agents": sorted({p[1] for p in parts})}
    return {str(u): int(m) for u, m in fetch(conn,
        f"SELECT r.u, {us('max(s.started_at)')} FROM steps AS s INNER JOIN (SELECT DISTINCT run_id, {UNIT} AS u "
        f"FROM runs WHERE {UNIT} IN {{units:Array(String)}}) AS r ON s.run_id = r.run_id "
        "WHERE s.project IN {unit_projects:Array(String)} AND s.agent_id IN {unit_agents:Array(String)} "
        f"AND s.started_at >= {at('first')} GROUP BY r.u", params)}
