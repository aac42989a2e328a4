"""The daily half of the rollup refresher: ``rollup_runs_daily`` / ``rollup_steps_daily`` per (project, agent, day).

The tables are schema/migrations/v0005_daily_rollups.py's. A day's rows merge its hourly rollup rows, and
``rollup_days`` records the ``signature`` of the hourly source stats (store/clickhouse/rollup.py's
``rollup_sources``) those rows stood for. A pass compares, for every day that ended before the settle
cutoff, the signature of the hours' recorded source stats with the one the day was built from, and rebuilds
the days that differ (an hour recomputed, or never built: the backfill). The signature is read before the
hourly rows are merged, so an hour recomputed in between leaves the day looking stale, never clean with
numbers that miss it.

A reader (store/clickhouse/read/stats_rollup.py) computes the same ``signature`` from the raw rows' stats of
the day's hours: equal only while each of those hours is what its hourly rows were computed from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.newest import FINAL_SETTINGS, Params, at, fetch, micros

DAY_S = 86_400
DAYS_PER_PASS = 100
# A day row's key as one string, unit-separated, like a unit's (newest.STORED_UNIT).
DAY_UNIT = "concat(project, char(31), agent_id, char(31), toString(toUnixTimestamp(day)))"
_HOUR_DAY_UNIT = "concat(project, char(31), agent_id, char(31), toString(toUnixTimestamp(toStartOfDay(hour))))"
_IDENTITY = ("project", "agent_id", "agent_version", "environment")
# The daily rows' merge of the hourly ones, column by column (rollup_runs / rollup_steps order after the key).
_RUN_MERGE = (
    *(f"sum({c})" for c in ("runs", "running", "success", "failure", "partial", "steps", "retry_steps",
                            "runs_with_retries", "run_time_ms", "timed")),
    "max(last_started_at)", "sumMap(failures)", "sumMap(latency_buckets)",
)
_RUN_VALUES = ("runs", "running", "success", "failure", "partial", "steps", "retry_steps", "runs_with_retries",
               "run_time_ms", "timed", "last_started_at", "failures", "latency_buckets")
_STEP_MERGE = (*(f"sum({c})" for c in ("steps", "errors", "retries", "latency_ms", "retry_latency_ms", "self_ms")),
               "sumMap(latency_buckets)")
_STEP_VALUES = ("steps", "errors", "retries", "latency_ms", "retry_latency_ms", "self_ms", "latency_buckets")


def day_of(hour_s: int) -> int:
    """The start (epoch seconds, UTC) of the day of an hour."""
    return hour_s - hour_s % DAY_S


def signature(hours: Iterable[tuple[int, int, int]]) -> int:
    """What a day's rows stand for: its hours' (hour epoch s, raw rows, newest version), the hours with rows.
    Never 0 (the value a reader's outer join gives a day never built)."""
    text = ";".join(f"{h},{n},{v}" for h, n, v in sorted(hours) if n)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") | 1


def refresh(conn: Connection, cutoff: datetime, retract: int, version: int) -> int:
    """Rebuild every day before ``cutoff``'s day whose hours' source stats changed since it was built; the
    number rebuilt (``retract``: the retraction's rolled_version, ``version`` the new rows')."""
    params: Params = {"cutoff": micros(cutoff)}
    hours: dict[str, list[tuple[int, int, int]]] = {}
    for project, agent_id, hour, n, v in fetch(conn,
            "SELECT project, agent_id, toUnixTimestamp(hour), source_rows, source_version FROM rollup_sources FINAL "
            f"WHERE hour < toStartOfDay({at('cutoff')})", params):
        hours.setdefault(f"{project}\x1f{agent_id}\x1f{day_of(int(hour))}", []).append((int(hour), int(n), int(v)))
    built = {str(k): int(s) for k, s in fetch(conn,
        f"SELECT {DAY_UNIT}, signature FROM rollup_days FINAL WHERE day < toStartOfDay({at('cutoff')})", params)}
    wanted = {day: signature(h) for day, h in hours.items()}
    empty = signature(())
    stale = sorted(d for d in {*wanted, *built} if built.get(d, empty) != wanted.get(d, empty))
    for i in range(0, len(stale), DAYS_PER_PASS):
        _rebuild(conn, stale[i: i + DAYS_PER_PASS], wanted, empty, retract, version)
    return len(stale)


def _rebuild(conn: Connection, days: list[str], wanted: dict[str, int], empty: int, retract: int,
             version: int) -> None:
    starts = [int(d.rsplit("\x1f", 1)[1]) for d in days]
    params: Params = {"days": days, "d0": min(starts) * 1_000_000, "d1": (max(starts) + DAY_S) * 1_000_000}
    hourly = f"hour >= {at('d0')} AND hour < {at('d1')} AND {_HOUR_DAY_UNIT} IN {{days:Array(String)}}"
    for daily, source, merge, values in (("rollup_runs_daily", "rollup_runs", _RUN_MERGE, _RUN_VALUES),
                                         ("rollup_steps_daily", "rollup_steps", _STEP_MERGE, _STEP_VALUES)):
        keys = (*_IDENTITY, "day", *(("step_type", "name") if daily == "rollup_steps_daily" else ()))
        columns = ", ".join((*keys, *values))
        conn.command(
            f"INSERT INTO {daily} ({columns}, rolled_version, is_deleted) SELECT {columns}, {retract}, 1 "
            f"FROM {daily} FINAL WHERE {DAY_UNIT} IN {{days:Array(String)}}", params, FINAL_SETTINGS)
        grouping = ", ".join(k if k != "day" else "toStartOfDay(hour) AS day" for k in keys)
        conn.command(
            f"INSERT INTO {daily} ({columns}, rolled_version, is_deleted) "
            f"SELECT {grouping}, {', '.join(merge)}, {version}, 0 FROM {source} FINAL WHERE {hourly} "
            f"GROUP BY {', '.join(keys)}", params, FINAL_SETTINGS)
    rows = []
    for day in days:
        project, agent_id, start = day.split("\x1f")
        rows.append((project, agent_id, int(start), wanted.get(day, empty), version))
    conn.insert("rollup_days", ("project", "agent_id", "day", "signature", "rolled_version"), rows)

