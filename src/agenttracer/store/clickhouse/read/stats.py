"""``GET /v1/stats`` on ClickHouse: the SQL store's ``RunStats``, from the newest versions of the runs.

The definitions are ``store/sql/read/stats.py``'s (and ``store/stats_assembly.py`` builds the answer): counts by
status, rates over finished runs, failures by type and code, retries, the per-step breakdown with self
time (``steps.py``) and the timeline. Whole clean hours come from the rollups when they answer
(``store/clickhouse/read/rollup.py``); this module reads the raw rows, where ClickHouse computes the
exact percentiles (``quantilesExactInclusive``: ``percentile_cont``'s definition) in the same pass as
the counters.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from agenttracer.model import RunStatus
from agenttracer.store.clickhouse.newest import Params, Queryable, fetch, from_micros, us
from agenttracer.store.clickhouse.read import stats_rollup
from agenttracer.store.clickhouse.read.filters import matching_runs
from agenttracer.store.clickhouse.read.steps import QUANTILES_SQL, newest_sample, percentiles, step_breakdown
from agenttracer.store.filters import RunFilters
from agenttracer.store.results import FailureCount, Percentiles, RunStats
from agenttracer.store.stats_assembly import BUCKET_FIELDS, BucketKey, StatsParts, assemble_stats, choose_bucket

# What the stats read of a run's newest version.
STATS_COLUMNS = ("run_id", "status", "started_at", "ended_at", "duration_ms", "step_count", "retry_count",
                 "failure_type", "failure_code")
_FINISHED = f"status != '{RunStatus.RUNNING.value}'"
_TIMED = f"{_FINISHED} AND duration_ms IS NOT NULL"
_BUCKETS = {"hour": "toStartOfHour", "day": "toStartOfDay"}


def run_stats(client: Queryable, filters: RunFilters, now: datetime | None = None) -> RunStats:
    """Everything ``GET /v1/stats`` reports for the runs matching ``filters``."""
    now = now or datetime.now(timezone.utc)
    params: Params = {}
    matching = matching_runs(filters, STATS_COLUMNS, params)
    first_at = last_at = None
    if filters.since is None or filters.until is None:  # the data's own range closes an open window
        first, last, n = fetch(client,
            f"SELECT min({us('started_at')}), max({us('started_at')}), count() FROM {matching}", params)[0]
        # (min() and max() over no rows answer the epoch in ClickHouse, not NULL.)
        first_at, last_at = (from_micros(first), from_micros(last)) if int(n) else (None, None)
    start = filters.since or first_at
    end = filters.until or (max(now, last_at) if last_at else now)
    unit = choose_bucket(start, end) if start is not None else "hour"
    parts = stats_rollup.collect(client, filters, start, end, unit) if start is not None else None
    if parts is None:
        parts = _exact(client, matching, params, unit, filters.projects)
    return assemble_stats(parts, unit, start, end, filters, now)


def _exact(client: Queryable, matching: str, params: Params, unit: str,
           projects: tuple[str, ...] | None) -> StatsParts:
    buckets, bucket_latency, run_latency = _bucket_rows(client, matching, params, unit)
    totals = [sum(row[i] for row in buckets.values()) for i in range(len(BUCKET_FIELDS))]
    summary = dict(zip(BUCKET_FIELDS, totals, strict=True))
    total = int(summary["total"])
    failures = fetch(client,
        f"SELECT failure_type, failure_code, count() FROM {matching} AND failure_type IS NOT NULL "
        "GROUP BY failure_type, failure_code", params)
    return StatsParts(
        total=total,
        counts={s.value: int(summary[s.value]) for s in RunStatus},
        steps=int(summary["steps"]),
        retry_steps=int(summary["retries"]),
        runs_with_retries=int(summary["runs_with_retries"]),
        failures={(t, c): FailureCount(t, c, int(n)).count for t, c, n in failures},
        per_step=step_breakdown(client, newest_sample(client, matching, params), projects, total,
                                float(summary["run_time"])),
        run_latency=run_latency,
        buckets=buckets,
        bucket_latency=bucket_latency,
        latency_exact=True,
    )


def _bucket_rows(client: Queryable, matching: str, params: Params, unit: str
                 ) -> tuple[dict[BucketKey, tuple[Any, ...]], dict[BucketKey, Percentiles], Percentiles]:
    """Counters and run latency percentiles per time bucket, and the percentiles over all matching runs:
    one pass, the grand total as the empty grouping set."""
    bucket = f"toUnixTimestamp({_BUCKETS[unit]}(started_at))"
    counters = ", ".join([
        "count()",
        *[f"countIf(status = '{s.value}')" for s in RunStatus],
        "sum(step_count)", "sum(retry_count)", "countIf(retry_count > 0)",
        f"sumIf(ifNull(duration_ms, 0), {_FINISHED})",
    ])
    rows = fetch(client,
        f"SELECT {bucket} AS b, grouping(b), {counters}, countIf({_TIMED}), "
        f"{QUANTILES_SQL}(if({_TIMED}, duration_ms, NULL)) FROM {matching} "
        "GROUP BY GROUPING SETS ((b), ())", params)
    found: dict[BucketKey, tuple[Any, ...]] = {}
    pcts: dict[BucketKey, Percentiles] = {}
    overall = Percentiles()
    for row in rows:
        ps = percentiles(row[-1], int(row[-2]))
        if row[1]:
            overall = ps
            continue
        key = from_micros(int(row[0]) * 1_000_000)
        found[key] = tuple(row[2:-2])
        pcts[key] = ps
    ordered = dict(sorted(found.items(), key=lambda kv: (kv[0] is not None, kv[0] or datetime.min)))
    return ordered, pcts, overall
