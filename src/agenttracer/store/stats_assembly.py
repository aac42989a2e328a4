"""The one place ``GET /v1/stats``'s answer is built, whatever the store and whichever path read its parts.

A store's stats reader gathers ``StatsParts`` — counters, failures by (type, code), the per-step breakdown,
run latency percentiles, per-bucket counters and percentiles — exactly over raw rows, or from rollups plus
raw edges; ``assemble_stats`` turns them into ``RunStats``: the rates, the failure lists, the retry numbers,
the run-time shares and the timeline with its empty buckets filled in. The definitions are stated in
``store/sql/read/stats.py``'s docstring and the API's field descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from agenttracer.model import RunStatus
from agenttracer.store.filters import RunFilters
from agenttracer.store.results import (
    TOP_FAILING_STEPS,
    FailingStep,
    FailureCount,
    Percentiles,
    RetryStats,
    RunStats,
    RunTime,
    StepBreakdown,
    StepGroupStats,
    TimeBucket,
    Timeline,
)
from agenttracer.store.stats_math import ratio

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
HOURLY_MAX_RANGE = timedelta(days=2)  # ranges up to two days get hourly buckets, longer ones daily
MAX_FILLED_BUCKETS = 1000  # beyond this, empty buckets are not filled in

BUCKET_FIELDS = ("total", *(s.value for s in RunStatus), "steps", "retries", "runs_with_retries", "run_time")


BucketKey = datetime | None


@dataclass(frozen=True)
class StatsParts:
    """What either source yields — exact SQL over the raw tables, or rollups plus raw edges — and
    ``assemble_stats`` turns into the one ``RunStats``."""

    total: int
    counts: dict[str, int]  # by status, running included
    steps: int
    retry_steps: int
    runs_with_retries: int
    failures: dict[tuple[str | None, str | None], int]  # by (failure_type, failure_code)
    per_step: StepBreakdown
    run_latency: Percentiles
    buckets: dict[BucketKey, tuple[Any, ...]]  # BUCKET_FIELDS per time bucket
    bucket_latency: dict[BucketKey, Percentiles]
    latency_exact: bool


def assemble_stats(parts: StatsParts, unit: str, start: datetime | None, end: datetime, filters: RunFilters,
              now: datetime) -> RunStats:
    """The one place RunStats is built, whatever the source of its parts."""
    counts, total, per_step = parts.counts, parts.total, parts.per_step
    finished = total - counts[RunStatus.RUNNING.value]
    by_type: dict[str | None, int] = {}
    by_code: dict[str | None, int] = {}
    for (failure_type, failure_code), n in parts.failures.items():
        by_type[failure_type] = by_type.get(failure_type, 0) + n
        by_code[failure_code] = by_code.get(failure_code, 0) + n
    retry_time = per_step.retry_time_ms
    return RunStats(
        total_runs=total,
        finished_runs=finished,
        status_counts=counts,
        success_rate=ratio(counts[RunStatus.SUCCESS.value], finished),
        failure_rate=ratio(counts[RunStatus.FAILURE.value], finished),
        partial_rate=ratio(counts[RunStatus.PARTIAL.value], finished),
        run_latency_ms=parts.run_latency,
        failures_by_type=sorted(
            (FailureCount(t, None, c) for t, c in by_type.items()), key=lambda f: (-f.count, f.failure_type or "")
        ),
        failures_by_code=sorted(
            (FailureCount(None, c, n) for c, n in by_code.items()), key=lambda f: (-f.count, f.failure_code or "")
        ),
        top_failing_steps=per_step.top_failing,
        retries=RetryStats(
            retry_steps=parts.retry_steps,
            total_steps=parts.steps,
            retry_rate=ratio(parts.retry_steps, parts.steps),
            runs_with_retries=parts.runs_with_retries,
            total_runs=total,
            run_retry_rate=ratio(parts.runs_with_retries, total),
            time_in_retries_ms=retry_time,
            share_of_step_time=ratio(retry_time, per_step.step_time_ms),
        ),
        step_types=per_step.types,
        step_names=per_step.names,
        step_names_truncated=per_step.names_truncated,
        step_sample_runs=per_step.sample_runs,
        steps_sampled=per_step.sampled,
        run_time=RunTime(total_ms=per_step.run_time_ms, untraced_ms=per_step.untraced_ms,
                         untraced_share=ratio(per_step.untraced_ms, per_step.run_time_ms)),
        timeline=timeline(parts.buckets, parts.bucket_latency, unit, start, end, filters),
        latency_exact=parts.latency_exact,
        generated_at=now,
    )


def choose_bucket(start: datetime, end: datetime) -> str:
    """Hourly buckets for ranges up to two days, daily beyond."""
    return "hour" if end - start <= HOURLY_MAX_RANGE else "day"


def floor_to(ts: datetime, unit: str) -> datetime:
    ts = ts.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0) if unit == "day" else ts


def timeline(
    buckets: dict[BucketKey, tuple[Any, ...]],
    latency: dict[BucketKey, Percentiles],
    unit: str,
    start: datetime | None,
    end: datetime,
    filters: RunFilters,
) -> Timeline:
    """Run volume and success rate per bucket over the requested range (or the data's, when open)."""
    if start is None:
        return Timeline(bucket=unit, start=filters.since, end=filters.until, points=[])
    index = {name: i for i, name in enumerate(BUCKET_FIELDS)}
    step = HOUR if unit == "hour" else DAY
    keys = {b for b in buckets if b is not None}
    first_bucket, last_bucket = floor_to(start, unit), floor_to(end - timedelta(microseconds=1), unit)
    if first_bucket <= last_bucket and (last_bucket - first_bucket) / step < MAX_FILLED_BUCKETS:
        t = first_bucket
        while t <= last_bucket:
            keys.add(t)
            t += step
    points = []
    for t in sorted(keys):
        row = buckets.get(t)
        n, s, x = (row[index["total"]], row[index["success"]], row[index["failure"]]) if row else (0, 0, 0)
        f = n - row[index["running"]] if row else 0
        points.append(TimeBucket(start=t, runs=int(n), finished_runs=int(f), success_runs=int(s),
                                 failure_runs=int(x), success_rate=ratio(s, f),
                                 run_latency_ms=latency.get(t, Percentiles())))
    return Timeline(bucket=unit, start=start, end=end, points=points)


def top_failing(names: list[StepGroupStats]) -> list[FailingStep]:
    failing = [s for s in names if s.error_count]
    failing.sort(key=lambda s: (-s.error_count, -s.error_rate, s.step_type, s.name or ""))
    return [
        FailingStep(s.step_type, s.name or "", s.error_count, s.count, s.error_rate)
        for s in failing[:TOP_FAILING_STEPS]
    ]
