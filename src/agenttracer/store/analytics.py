"""Run statistics for ``GET /v1/stats``: outcomes, latency attribution, retries, failures, volume over time.

Pure query + computation on a SQLAlchemy connection; the Query API turns the result into
``wire.StatsResponse``. Definitions (repeated in the API field descriptions):

* Rates and run latency are over *finished* runs (status other than ``running``): a running run
  has no outcome and no duration yet. Counts by status include running runs.
* A *retry step* is a step with ``attempt > 1``: a new attempt of an earlier step. Retry rate is
  retry steps / all steps; run retry rate is runs with at least one retry / all runs. Time in
  retries is the summed latency of retry steps.
* Share of run time: the summed latency of a group's steps in finished runs divided by the summed
  duration of those runs. A nested step's time is also inside its parent's, and parallel steps
  overlap, so shares may add up to more than 1.

Run-level numbers come from the denormalised columns of ``runs`` (no join); only the per-step
breakdown reads ``steps``, joined to the filtered runs through the primary key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from agenttracer.model import RunStatus, StepStatus
from agenttracer.store.analytics_sql import Percentiles, as_utc, grouped_percentiles, time_bucket
from agenttracer.store.filters import RunFilters, run_conditions
from agenttracer.store.tables import runs, steps

HOURLY_MAX_RANGE = timedelta(days=2)  # ranges up to two days get hourly buckets, longer ones daily
MAX_FILLED_BUCKETS = 1000  # beyond this, empty buckets are not filled in
TOP_FAILING_STEPS = 10
STEP_NAME_LIMIT = 100


@dataclass(frozen=True)
class FailureCount:
    failure_type: str | None
    failure_code: str | None
    count: int


@dataclass(frozen=True)
class FailingStep:
    step_type: str
    name: str
    error_count: int
    count: int
    error_rate: float


@dataclass(frozen=True)
class StepGroupStats:
    step_type: str
    name: str | None
    count: int
    error_count: int
    error_rate: float
    retry_count: int
    latency_ms: Percentiles
    total_latency_ms: float
    share_of_run_time: float | None


@dataclass(frozen=True)
class RetryStats:
    retry_steps: int
    total_steps: int
    retry_rate: float | None
    runs_with_retries: int
    total_runs: int
    run_retry_rate: float | None
    time_in_retries_ms: float
    share_of_step_time: float | None


@dataclass(frozen=True)
class TimeBucket:
    start: datetime
    runs: int
    finished_runs: int
    success_runs: int
    failure_runs: int
    success_rate: float | None


@dataclass(frozen=True)
class Timeline:
    bucket: str
    start: datetime | None
    end: datetime | None
    points: list[TimeBucket]


@dataclass(frozen=True)
class RunStats:
    total_runs: int
    finished_runs: int
    status_counts: dict[str, int]
    success_rate: float | None
    failure_rate: float | None
    partial_rate: float | None
    run_latency_ms: Percentiles
    failures_by_type: list[FailureCount]
    failures_by_code: list[FailureCount]
    top_failing_steps: list[FailingStep]
    retries: RetryStats
    step_types: list[StepGroupStats]
    step_names: list[StepGroupStats]
    step_names_truncated: bool
    timeline: Timeline
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def ratio(part: float, whole: float) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


def _count_if(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)


def _finished() -> sa.ColumnElement[bool]:
    return runs.c.status != RunStatus.RUNNING.value


def run_stats(conn: sa.Connection, filters: RunFilters, now: datetime | None = None) -> RunStats:
    """Everything ``GET /v1/stats`` reports for the runs matching ``filters``."""
    now = now or datetime.now(timezone.utc)
    where = run_conditions(filters)
    status_cols = [_count_if(runs.c.status == s.value).label(s.value) for s in RunStatus]
    summary = conn.execute(
        sa.select(
            sa.func.count().label("total"),
            *status_cols,
            sa.func.coalesce(sa.func.sum(runs.c.step_count), 0).label("steps"),
            sa.func.coalesce(sa.func.sum(runs.c.retry_count), 0).label("retries"),
            _count_if(runs.c.retry_count > 0).label("runs_with_retries"),
            sa.func.coalesce(sa.func.sum(sa.case((_finished(), runs.c.duration_ms), else_=None)), 0.0).label(
                "run_time"
            ),
            sa.func.min(runs.c.started_at).label("first"),
            sa.func.max(runs.c.started_at).label("last"),
        ).where(*where)
    ).one()
    counts = {s.value: int(summary._mapping[s.value]) for s in RunStatus}
    total = int(summary.total)
    finished = total - counts[RunStatus.RUNNING.value]

    durations = sa.select(runs.c.duration_ms.label("v")).where(*where, _finished()).subquery()
    run_latency = grouped_percentiles(conn, durations).get((), Percentiles())

    failures = _failure_counts(conn, where)
    by_type: dict[str | None, int] = {}
    by_code: dict[str | None, int] = {}
    for f in failures:
        by_type[f.failure_type] = by_type.get(f.failure_type, 0) + f.count
        by_code[f.failure_code] = by_code.get(f.failure_code, 0) + f.count

    types, names, truncated, retry_time, step_time = _step_breakdown(conn, where, float(summary.run_time))
    first = summary.first if isinstance(summary.first, datetime) else None
    last = summary.last if isinstance(summary.last, datetime) else None
    return RunStats(
        total_runs=total,
        finished_runs=finished,
        status_counts=counts,
        success_rate=ratio(counts[RunStatus.SUCCESS.value], finished),
        failure_rate=ratio(counts[RunStatus.FAILURE.value], finished),
        partial_rate=ratio(counts[RunStatus.PARTIAL.value], finished),
        run_latency_ms=run_latency,
        failures_by_type=sorted(
            (FailureCount(t, None, c) for t, c in by_type.items()), key=lambda f: (-f.count, f.failure_type or "")
        ),
        failures_by_code=sorted(
            (FailureCount(None, c, n) for c, n in by_code.items()), key=lambda f: (-f.count, f.failure_code or "")
        ),
        top_failing_steps=_top_failing(names),
        retries=RetryStats(
            retry_steps=int(summary.retries),
            total_steps=int(summary.steps),
            retry_rate=ratio(int(summary.retries), int(summary.steps)),
            runs_with_retries=int(summary.runs_with_retries),
            total_runs=total,
            run_retry_rate=ratio(int(summary.runs_with_retries), total),
            time_in_retries_ms=retry_time,
            share_of_step_time=ratio(retry_time, step_time),
        ),
        step_types=types,
        step_names=names,
        step_names_truncated=truncated,
        timeline=_timeline(conn, where, filters, first, last, now),
        generated_at=now,
    )


def _failure_counts(conn: sa.Connection, where: list[sa.ColumnElement[bool]]) -> list[FailureCount]:
    rows = conn.execute(
        sa.select(runs.c.failure_type, runs.c.failure_code, sa.func.count())
        .where(*where, runs.c.failure_type.is_not(None))
        .group_by(runs.c.failure_type, runs.c.failure_code)
    )
    return [FailureCount(t, c, int(n)) for t, c, n in rows]


def _step_breakdown(
    conn: sa.Connection, where: list[sa.ColumnElement[bool]], run_time: float
) -> tuple[list[StepGroupStats], list[StepGroupStats], bool, float, float]:
    """Per step type and per (type, name): counts, errors, retries, latency and share of run time."""
    joined = steps.join(runs, steps.c.run_id == runs.c.run_id)
    in_finished = sa.case((_finished(), steps.c.latency_ms), else_=0.0)
    agg = conn.execute(
        sa.select(
            steps.c.step_type,
            steps.c.name,
            sa.func.count(),
            _count_if(steps.c.status == StepStatus.ERROR.value),
            _count_if(steps.c.attempt > 1),
            sa.func.sum(steps.c.latency_ms),
            sa.func.sum(in_finished),
            sa.func.coalesce(sa.func.sum(sa.case((steps.c.attempt > 1, steps.c.latency_ms), else_=0.0)), 0.0),
        )
        .select_from(joined)
        .where(*where)
        .group_by(steps.c.step_type, steps.c.name)
    ).all()

    def source(*keys: sa.ColumnElement[Any]) -> sa.Subquery:
        cols = [k.label(f"k{i}") for i, k in enumerate(keys)]
        return sa.select(*cols, steps.c.latency_ms.label("v")).select_from(joined).where(*where).subquery()

    name_pcts = grouped_percentiles(conn, source(steps.c.step_type, steps.c.name))
    type_pcts = grouped_percentiles(conn, source(steps.c.step_type))

    type_acc: dict[str, list[float]] = {}
    names: list[StepGroupStats] = []
    retry_time = step_time = 0.0
    for step_type, name, count, errors, retries, latency, latency_finished, retry_latency in agg:
        acc = type_acc.setdefault(step_type, [0, 0, 0, 0.0, 0.0])
        for i, value in enumerate((count, errors, retries, latency, latency_finished)):
            acc[i] += value
        retry_time += float(retry_latency)
        step_time += float(latency)
        names.append(
            StepGroupStats(
                step_type=step_type,
                name=name,
                count=int(count),
                error_count=int(errors),
                error_rate=int(errors) / int(count),
                retry_count=int(retries),
                latency_ms=name_pcts.get((step_type, name), Percentiles()),
                total_latency_ms=float(latency),
                share_of_run_time=ratio(float(latency_finished), run_time),
            )
        )
    types = [
        StepGroupStats(
            step_type=step_type,
            name=None,
            count=int(acc[0]),
            error_count=int(acc[1]),
            error_rate=acc[1] / acc[0],
            retry_count=int(acc[2]),
            latency_ms=type_pcts.get((step_type,), Percentiles()),
            total_latency_ms=float(acc[3]),
            share_of_run_time=ratio(float(acc[4]), run_time),
        )
        for step_type, acc in type_acc.items()
    ]
    types.sort(key=lambda s: (-s.total_latency_ms, s.step_type))
    names.sort(key=lambda s: (-s.total_latency_ms, s.step_type, s.name or ""))
    return types, names[:STEP_NAME_LIMIT], len(names) > STEP_NAME_LIMIT, retry_time, step_time


def _top_failing(names: list[StepGroupStats]) -> list[FailingStep]:
    failing = [s for s in names if s.error_count]
    failing.sort(key=lambda s: (-s.error_count, -s.error_rate, s.step_type, s.name or ""))
    return [
        FailingStep(s.step_type, s.name or "", s.error_count, s.count, s.error_rate)
        for s in failing[:TOP_FAILING_STEPS]
    ]


def choose_bucket(start: datetime, end: datetime) -> str:
    """Hourly buckets for ranges up to two days, daily beyond."""
    return "hour" if end - start <= HOURLY_MAX_RANGE else "day"


def _floor(ts: datetime, unit: str) -> datetime:
    ts = ts.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0) if unit == "day" else ts


def _timeline(
    conn: sa.Connection,
    where: list[sa.ColumnElement[bool]],
    filters: RunFilters,
    first: datetime | None,
    last: datetime | None,
    now: datetime,
) -> Timeline:
    """Run volume and success rate per bucket over the requested range (or the data's, when open)."""
    start = filters.since or first
    end = filters.until or (max(now, last) if last else now)
    if start is None:
        return Timeline(bucket="hour", start=filters.since, end=filters.until, points=[])
    unit = choose_bucket(start, end)
    bucket = time_bucket(conn, runs.c.started_at, unit).label("b")
    rows = conn.execute(
        sa.select(
            bucket,
            sa.func.count(),
            _count_if(_finished()),
            _count_if(runs.c.status == RunStatus.SUCCESS.value),
            _count_if(runs.c.status == RunStatus.FAILURE.value),
        )
        .where(*where, runs.c.started_at.is_not(None))
        .group_by(bucket)
    ).all()
    found = {as_utc(b): (int(n), int(f), int(s), int(x)) for b, n, f, s, x in rows}
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    keys = set(found)
    first_bucket, last_bucket = _floor(start, unit), _floor(end - timedelta(microseconds=1), unit)
    if first_bucket <= last_bucket and (last_bucket - first_bucket) / step < MAX_FILLED_BUCKETS:
        t = first_bucket
        while t <= last_bucket:
            keys.add(t)
            t += step
    points = []
    for t in sorted(keys):
        n, f, s, x = found.get(t, (0, 0, 0, 0))
        points.append(TimeBucket(start=t, runs=n, finished_runs=f, success_runs=s, failure_runs=x,
                                 success_rate=ratio(s, f)))
    return Timeline(bucket=unit, start=start, end=end, points=points)
