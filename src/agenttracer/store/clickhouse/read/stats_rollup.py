"""``GET /v1/stats`` from the rollups (store/clickhouse/rollup.py): clean hours from their rows, the rest raw.

The window's whole hours are split by unit — (project, agent_id, hour) — into *clean* units, whose raw
rows (count and newest ``version``, every version counted) are what ``rollup_sources`` says the rollup
was computed from, and the rest (``rollup.freshness``). A window bucketed by day reads its whole days
whose hours' raw stats still give the signature their daily rows were built from (rollup_days.py) from
those rows: a row per identity and day instead of 24. One statement then merges the daily and clean
hourly rollup rows with the same aggregates over the newest versions of every other run in the window
(edge hours, dirty and new hours; none when the window is whole clean hours): counts, sums and failures
are exact; the run latency percentiles are read from merged bucket counts of the SQL store's histogram
(store/clickhouse/histogram.py: within 1 % of the exact value, the SQL store's rollups' own numbers)
and the answer says ``latency_exact`` False. The per-step breakdown is built the same way from the step
rollups and the rest's raw steps (``steps_rollup.py``): every matching run, no sample, as on the SQL store.

The rollups answer only filters they keep (project, agent, version, environment, time) and only past
EXACT_MAX_RUNS matching runs: below that the exact path is cheap and gives exact percentiles, as the
SQL store does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agenttracer.model import RunStatus
from agenttracer.store.clickhouse.histogram import percentiles, with_bounds
from agenttracer.store.clickhouse.newest import (
    STORED_UNIT,
    UNIT,
    Params,
    Queryable,
    at,
    fetch,
    from_micros,
    in_projects,
    micros,
)
from agenttracer.store.clickhouse.read.filters import matching_runs
from agenttracer.store.clickhouse.read.steps_rollup import Rest, rolled_breakdown
from agenttracer.store.clickhouse.rollup import AGGREGATES, Freshness, freshness
from agenttracer.store.clickhouse.rollup_days import DAY_S, DAY_UNIT
from agenttracer.store.filters import RunFilters
from agenttracer.store.results import Percentiles
from agenttracer.store.stats_assembly import BUCKET_FIELDS, HOUR, BucketKey, StatsParts

EXACT_MAX_RUNS = 2_000
_BUCKETS = {"hour": "toStartOfHour", "day": "toStartOfDay"}
_COLUMNS = ("run_id", "project", "agent_id", "agent_version", "environment", "status", "started_at",
            "duration_ms", "step_count", "retry_count", "failure_type", "failure_code", "ended_at", "version")


def applies(filters: RunFilters) -> bool:
    """Whether the rollups keep every dimension these filters use ('' names no identity: never rolled)."""
    if any(v is not None for v in (filters.status, filters.failure_type, filters.failure_code, filters.step_name)):
        return False
    return "" not in (filters.agent_id, filters.agent_version, filters.environment)


def collect(q: Queryable, filters: RunFilters, start: datetime, end: datetime, unit: str) -> StatsParts | None:
    """The stats parts of the window [start, end) from rollups + raw, or None when the exact path answers."""
    if not applies(filters):
        return None
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    if first_hour < start:
        first_hour += HOUR
    last_hour = end.replace(minute=0, second=0, microsecond=0)
    if last_hour <= first_hour:
        return None
    params: Params = {}
    scope = in_projects(filters.projects, params)
    if filters.agent_id is not None:
        params["agent_id"] = filters.agent_id
        scope.append("agent_id = {agent_id:String}")
    # Daily rows only where the timeline is daily too: the window's whole days.
    days = None
    if unit == "day":
        h0_s, h1_s = micros(first_hour) // 1_000_000, micros(last_hour) // 1_000_000
        days = (-(-h0_s // DAY_S) * DAY_S, h1_s // DAY_S * DAY_S)
    fresh = freshness(q, scope, params, (micros(start), micros(end)), (micros(first_hour), micros(last_hour)), days)
    if not fresh.clean and not fresh.days:
        return None
    params["clean"] = fresh.clean
    params["dirty"] = fresh.dirty
    params["rolled_days"] = fresh.days
    params["dirty_hours"] = sorted({int(u.rsplit("\x1f", 1)[1]) for u in fresh.dirty})
    versions = [f"{name} = {{{name}:String}}" for name in ("agent_version", "environment")
                if getattr(filters, name) is not None]
    for name in ("agent_version", "environment"):
        if getattr(filters, name) is not None:
            params[name] = getattr(filters, name)
    # The rollup rows to read, narrowed on their sorting key first: the clean units are inside [h0, h1).
    # Each kind of row read inside the range its units span (their sorting key), not the whole window's.
    hourly = daily = None
    if fresh.clean:
        params["clean_from"], params["clean_to"] = _span(fresh.clean, int(HOUR.total_seconds()))
        hourly = [*scope, "hour >= toDateTime({clean_from:UInt32}, 'UTC')",
                  "hour < toDateTime({clean_to:UInt32}, 'UTC')", *versions, f"{STORED_UNIT} IN {{clean:Array(String)}}"]
    if fresh.days:
        params["days_span_from"], params["days_span_to"] = _span(fresh.days, DAY_S)
        daily = [*scope, "day >= toDateTime({days_span_from:UInt32}, 'UTC')",
                 "day < toDateTime({days_span_to:UInt32}, 'UTC')", *versions,
                 f"{DAY_UNIT} IN {{rolled_days:Array(String)}}"]
    # Outside the clean units and days, written as ranges of the sorting key's time so that only their
    # granules are read; nothing when no run is there.
    rest = None
    if fresh.raw_from is not None:
        rest = matching_runs(filters, _COLUMNS, params, narrow=[
            _outside("started_at", "toStartOfHour(started_at)", UNIT, bool(fresh.dirty))])
    bucket = _BUCKETS[unit]
    values = ("runs, running, success, failure, partial, steps, retry_steps, runs_with_retries, run_time_ms, timed, "
              "last_started_at, failures, latency_buckets")
    parts = []
    if hourly is not None:
        parts.append(f"SELECT toUnixTimestamp({bucket}(hour)) AS b, {values} FROM rollup_runs FINAL "
                     f"WHERE {' AND '.join(hourly)}")
    if daily is not None:
        parts.append(f"SELECT toUnixTimestamp(day) AS b, {values} FROM rollup_runs_daily FINAL "
                     f"WHERE {' AND '.join(daily)}")
    if rest is not None:
        parts.append(f"SELECT * FROM ({with_bounds()} SELECT toUnixTimestamp({bucket}(started_at)) AS b, "
                     f"{', '.join(AGGREGATES)} FROM {rest} GROUP BY b)")
    # One grouping, by time bucket: the window's totals, failures and latency buckets are added here (a few
    # dozen buckets), which costs less than merging every row's maps a second time for a grand total.
    rows = fetch(q, (
        "SELECT b, sum(runs), sum(running), sum(success), sum(failure), sum(partial), sum(steps), "
        "sum(retry_steps), sum(runs_with_retries), sum(run_time_ms), sum(timed), sumMap(failures), "
        f"sumMap(latency_buckets) FROM ({' UNION ALL '.join(parts)}) GROUP BY b"), params)
    buckets: dict[BucketKey, tuple[Any, ...]] = {}
    latency: dict[BucketKey, Percentiles] = {}
    window_counts: dict[int, int] = {}
    failures: dict[tuple[str | None, str | None], int] = {}
    total = 0
    for row in rows:
        counts = {int(k): int(n) for k, n in dict(row[12]).items()}
        for k, n in counts.items():
            window_counts[k] = window_counts.get(k, 0) + n
        for key, n in dict(row[11]).items():
            failure_type, _, code = key.partition(":")
            failure = (failure_type, code or None)
            failures[failure] = failures.get(failure, 0) + int(n)
        total += int(row[1])
        when = from_micros(int(row[0]) * 1_000_000)
        buckets[when] = tuple(row[1:10])
        latency[when] = percentiles(counts)
    overall = percentiles(window_counts)
    if total <= EXACT_MAX_RUNS:
        return None
    ordered = dict(sorted(buckets.items(), key=lambda kv: (kv[0] is not None, kv[0] or datetime.min)))
    totals = dict(zip(BUCKET_FIELDS, [sum(r[i] for r in ordered.values()) for i in range(len(BUCKET_FIELDS))],
                      strict=True))
    return StatsParts(
        total=total,
        counts={s.value: int(totals[s.value]) for s in RunStatus},
        steps=int(totals["steps"]),
        retry_steps=int(totals["retries"]),
        runs_with_retries=int(totals["runs_with_retries"]),
        failures=failures,
        per_step=rolled_breakdown(q, hourly, daily, None if rest is None else Rest(
            rest, [*scope, *_steps_reach(fresh, params)], at("rest_first"), [
                *scope, f"hour >= toStartOfHour({at('rest_first')})",
                _outside("hour", "hour", STORED_UNIT, bool(fresh.dirty))], fresh.attributed),
            {**params, "rest_first": fresh.raw_from},
            total, float(totals["run_time"])),
        run_latency=overall,
        buckets=ordered,
        bucket_latency=latency,
        latency_exact=False,
    )


def _outside(time: str, hour: str, unit: str, dirty: bool) -> str:
    """The condition keeping rows (``time``, its ``hour`` and ``unit`` expressions) outside the window's whole
    hours [h0, h1) or in its dirty units. Without dirty units only the time ranges: two sets and a string key per
    row less at each of the four places a window ending mid-hour reads it (docs/performance.md)."""
    ranges = f"{time} < {at('h0')} OR {time} >= {at('h1')}"
    if not dirty:
        return f"({ranges})"
    return (f"({ranges} OR (toUnixTimestamp({hour}) IN {{dirty_hours:Array(UInt32)}} "
            f"AND {unit} IN {{dirty:Array(String)}}))")


def _span(keys: list[str], length_s: int) -> tuple[int, int]:
    """The [first, end) epoch seconds spanned by unit or day keys (project, agent, start) of ``length_s`` each."""
    starts = [int(k.rsplit("\x1f", 1)[1]) for k in keys]
    return min(starts), max(starts) + length_s


def _steps_reach(fresh: Freshness, params: Params) -> list[str]:
    """A bound of the raw part's steps from above, when the window's first partial hour has one: its runs' steps
    start no later than the units' recorded reach, every other raw run's no earlier than the earliest of them
    (else those steps would be read from the window's start to its end)."""
    if fresh.edge_reach is None:
        return []
    params["edge_reach"] = fresh.edge_reach
    if fresh.later_from is None:
        return [f"started_at <= {at('edge_reach')}"]
    params["later_from"] = fresh.later_from
    return [f"(started_at <= {at('edge_reach')} OR started_at >= {at('later_from')})"]
