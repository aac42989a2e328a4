"""``GET /v1/stats`` from the rollups (store/clickhouse/rollup.py): clean hours from their rows, the rest raw.

The window's whole hours are split by unit — (project, agent_id, hour) — into *clean* units, whose raw
rows (count and newest ``version``, every version counted) are what ``rollup_sources`` says the rollup
was computed from, and the rest. One statement then merges the clean units' rollup rows with the
same aggregates over the newest versions of every other run in the window (edge hours, dirty and new
hours): counts, sums and failures are exact; the latency percentiles merge DDSketch states
(``quantilesDD`` at relative accuracy 0.01: within 1 % of a value of the sample near the exact one)
and the answer says ``latency_exact`` False. The per-step breakdown reads the newest STEP_SAMPLE_RUNS
matching runs, as on the exact path.

The rollups answer only filters they keep (project, agent, version, environment, time) and only past
EXACT_MAX_RUNS matching runs: below that the exact path is cheap and gives exact percentiles, as the
SQL store does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from agenttracer.model import RunStatus
from agenttracer.store.clickhouse.newest import Params, Queryable, at, fetch, from_micros, in_projects, micros
from agenttracer.store.clickhouse.read.filters import matching_runs
from agenttracer.store.clickhouse.read.runs import list_runs
from agenttracer.store.clickhouse.read.steps import step_breakdown
from agenttracer.store.clickhouse.rollup import AGGREGATES, STORED_UNIT, UNIT, source_stats, stored_sources
from agenttracer.store.filters import RunFilters
from agenttracer.store.results import STEP_SAMPLE_RUNS, Percentiles
from agenttracer.store.sql.read.stats import _BUCKET_FIELDS, BucketKey, _Parts

EXACT_MAX_RUNS = 2_000
HOUR = timedelta(hours=1)
_BUCKETS = {"hour": "toStartOfHour", "day": "toStartOfDay"}
_COLUMNS = ("run_id", "project", "agent_id", "agent_version", "environment", "status", "started_at",
            "duration_ms", "step_count", "retry_count", "failure_type", "failure_code", "ended_at")


def applies(filters: RunFilters) -> bool:
    """Whether the rollups keep every dimension these filters use ('' names no identity: never rolled)."""
    if any(v is not None for v in (filters.status, filters.failure_type, filters.failure_code, filters.step_name)):
        return False
    return "" not in (filters.agent_id, filters.agent_version, filters.environment)


def collect(q: Queryable, filters: RunFilters, start: datetime, end: datetime, unit: str) -> _Parts | None:
    """The stats parts of the window [start, end) from rollups + raw, or None when the exact path answers."""
    if not applies(filters):
        return None
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    if first_hour < start:
        first_hour += HOUR
    last_hour = end.replace(minute=0, second=0, microsecond=0)
    if last_hour <= first_hour:
        return None
    params: Params = {"h0": micros(first_hour), "h1": micros(last_hour)}
    scope = in_projects(filters.projects, params)
    if filters.agent_id is not None:
        params["agent_id"] = filters.agent_id
        scope.append("agent_id = {agent_id:String}")
    raw = source_stats(q, [*scope, f"started_at >= {at('h0')}", f"started_at < {at('h1')}"], params)
    stored = stored_sources(q, [*scope, f"hour >= {at('h0')}", f"hour < {at('h1')}"], params)
    clean = sorted(u for u, s in raw.items() if stored.get(u) == s)
    if not clean:
        return None
    params["clean"] = clean
    identity = scope + [f"{name} = {{{name}:String}}" for name in ("agent_version", "environment")
                        if getattr(filters, name) is not None]
    for name in ("agent_version", "environment"):
        if getattr(filters, name) is not None:
            params[name] = getattr(filters, name)
    rest = matching_runs(filters, _COLUMNS, params, narrow=[f"{UNIT} NOT IN {{clean:Array(String)}}"])
    bucket = _BUCKETS[unit]
    rolled = (f"SELECT toUnixTimestamp({bucket}(hour)) AS b, runs, running, success, failure, partial, steps, "
              "retry_steps, runs_with_retries, run_time_ms, timed, last_started_at, failures, latency "
              f"FROM rollup_runs FINAL WHERE {' AND '.join([*identity, f'{STORED_UNIT} IN {{clean:Array(String)}}'])}")
    raw_part = f"SELECT toUnixTimestamp({bucket}(started_at)) AS b, {', '.join(AGGREGATES)} FROM {rest} GROUP BY b"
    rows = fetch(q, (
        "SELECT b, grouping(b), sum(runs), sum(running), sum(success), sum(failure), sum(partial), sum(steps), "
        "sum(retry_steps), sum(runs_with_retries), sum(run_time_ms), sum(timed), sumMap(failures), "
        f"quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(latency) FROM ({rolled} UNION ALL {raw_part}) "
        "GROUP BY GROUPING SETS ((b), ())"), params)
    buckets: dict[BucketKey, tuple[Any, ...]] = {}
    latency: dict[BucketKey, Percentiles] = {}
    overall = Percentiles()
    failures: dict[tuple[str | None, str | None], int] = {}
    total = 0
    for row in rows:
        ps = Percentiles.of(list(row[13])) if int(row[11]) else Percentiles()
        if row[1]:
            overall = ps
            total = int(row[2])
            for key, n in dict(row[12]).items():
                failure_type, _, code = key.partition(":")
                failures[(failure_type, code or None)] = int(n)
            continue
        when = from_micros(int(row[0]) * 1_000_000)
        buckets[when] = tuple(row[2:11])
        latency[when] = ps
    if total <= EXACT_MAX_RUNS:
        return None
    ordered = dict(sorted(buckets.items(), key=lambda kv: (kv[0] is not None, kv[0] or datetime.min)))
    totals = dict(zip(_BUCKET_FIELDS, [sum(r[i] for r in ordered.values()) for i in range(len(_BUCKET_FIELDS))],
                      strict=True))
    # The newest runs, found as the runs list finds a page (few granules), not by reading the window.
    newest, _ = list_runs(q, filters, limit=STEP_SAMPLE_RUNS)
    sample = [(r["run_id"], r["status"], r["duration_ms"], _us(r["started_at"]), _us(r["ended_at"])) for r in newest]
    return _Parts(
        total=total,
        counts={s.value: int(totals[s.value]) for s in RunStatus},
        steps=int(totals["steps"]),
        retry_steps=int(totals["retries"]),
        runs_with_retries=int(totals["runs_with_retries"]),
        failures=failures,
        per_step=step_breakdown(q, sample, filters.projects, total, float(totals["run_time"])),
        run_latency=overall,
        buckets=ordered,
        bucket_latency=latency,
        latency_exact=False,
    )


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else micros(moment)
