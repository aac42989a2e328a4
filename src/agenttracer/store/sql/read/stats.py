"""Run statistics for ``GET /v1/stats``: outcomes, latency attribution, retries, failures, volume over time.

Pure query + computation on a SQLAlchemy connection; the Query API turns the result into
``wire.StatsResponse``. Definitions (repeated in the API field descriptions):

* Rates and run latency are over *finished* runs (status other than ``running``): a running run
  has no outcome and no duration yet. Counts by status include running runs.
* A *retry step* is a step with ``attempt > 1``: a new attempt of an earlier step. Retry rate is
  retry steps / all steps; run retry rate is runs with at least one retry / all runs. Time in
  retries is the summed latency of retry steps.
* Per-step numbers (step types and names, top failing steps, time in retries) read the steps of the
  newest STEP_SAMPLE_RUNS matching runs when more runs match; the response says so.
* Share of run time: the summed *self time* of a group's steps in finished runs divided by the summed
  duration of those runs (``store/sql/rollup/selftime.py`` defines self time: nested steps are not counted
  again in their parents, parallel steps split the time they share). The step types' shares plus the
  untraced share (time in which no step ran) add up to 1.

Run-level numbers come from the denormalised columns of ``runs`` (no join); only the per-step
breakdown reads ``steps``, joined to the filtered runs through the primary key.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from agenttracer.model import RunStatus
from agenttracer.store.filters import RunFilters
from agenttracer.store.results import (
    FailureCount,
    Percentiles,
    RunStats,
)
from agenttracer.store.sql.dialect import as_utc, is_postgres
from agenttracer.store.sql.expressions import count_if, time_bucket
from agenttracer.store.sql.read import stats_rollup
from agenttracer.store.sql.read.filters import run_conditions
from agenttracer.store.sql.read.sql import grouped_percentiles, percentiles_aggregate, tune
from agenttracer.store.sql.read.steps import step_breakdown
from agenttracer.store.sql.schema.tables import runs
from agenttracer.store.stats_assembly import BUCKET_FIELDS, BucketKey, StatsParts, assemble_stats, choose_bucket


def _finished() -> sa.ColumnElement[bool]:
    return runs.c.status != RunStatus.RUNNING.value


def run_stats(conn: sa.Connection, filters: RunFilters, now: datetime | None = None) -> RunStats:
    """Everything ``GET /v1/stats`` reports for the runs matching ``filters``."""
    now = now or datetime.now(timezone.utc)
    tune(conn)
    where = run_conditions(filters)
    # min/max come from the started_at indexes; they fix the timeline's range and bucket size, and then
    # one grouped scan of the runs gives both the timeline and (summed over buckets) the totals. Two scalar
    # subqueries, not min() and max() in one SELECT: SQLite answers a lone min() or max() with one index
    # lookup but scans the whole range for the pair (PostgreSQL plans both forms as two lookups).
    bounds = sa.select(
        sa.select(sa.func.min(runs.c.started_at)).where(*where).scalar_subquery(),
        sa.select(sa.func.max(runs.c.started_at)).where(*where).scalar_subquery(),
    )
    first, last = conn.execute(bounds).one()
    first = first if isinstance(first, datetime) else None
    last = last if isinstance(last, datetime) else None
    start = filters.since or first
    end = filters.until or (max(now, last) if last else now)
    unit = choose_bucket(start, end) if start is not None else "hour"
    parts = None
    if start is not None:
        rolled = stats_rollup.collect(conn, filters, start, filters.until, unit)
        if rolled is not None:
            parts = _from_rollup(rolled)
    if parts is None:
        parts = _exact(conn, where, unit)
    return assemble_stats(parts, unit, start, end, filters, now)


def _exact(conn: sa.Connection, where: list[sa.ColumnElement[bool]], unit: str) -> StatsParts:
    """The parts from the raw tables (exact percentiles; per-step numbers over a sample of runs)."""
    buckets, bucket_latency, run_latency = _bucket_rows(conn, where, unit)
    totals = [sum(row[i] for row in buckets.values()) for i in range(len(BUCKET_FIELDS))]
    summary = dict(zip(BUCKET_FIELDS, totals, strict=True))
    total = int(summary["total"])
    return StatsParts(
        total=total,
        counts={s.value: int(summary[s.value]) for s in RunStatus},
        steps=int(summary["steps"]),
        retry_steps=int(summary["retries"]),
        runs_with_retries=int(summary["runs_with_retries"]),
        failures={(f.failure_type, f.failure_code): f.count for f in _failure_counts(conn, where)},
        per_step=step_breakdown(conn, where, total, float(summary["run_time"]), int(summary["steps"])),
        run_latency=run_latency,
        buckets=buckets,
        bucket_latency=bucket_latency,
        latency_exact=True,
    )


def _from_rollup(rolled: stats_rollup.RollupStats) -> StatsParts:
    """The parts from rollups + raw parts: the same numbers as the exact path, percentiles from histograms."""
    total = rolled.total()
    fields = {"total": "runs", "steps": "steps", "retries": "retry_steps", "runs_with_retries": "runs_with_retries",
              "run_time": "run_time_ms"}
    ordered = dict(sorted(rolled.buckets.items(), key=lambda kv: (kv[0] is not None, kv[0] or datetime.min)))
    failures: dict[tuple[str | None, str | None], int] = {}
    for (failure_type, failure_code), n in rolled.failures.items():
        key = (failure_type, failure_code or None)  # rollup keys hold '' for "no code"
        failures[key] = failures.get(key, 0) + n
    return StatsParts(
        total=total.runs,
        counts=stats_rollup.status_counts(total),
        steps=total.steps,
        retry_steps=total.retry_steps,
        runs_with_retries=total.runs_with_retries,
        failures=failures,
        per_step=stats_rollup.step_breakdown_from(rolled, total.runs, total.run_time_ms),
        run_latency=stats_rollup.percentiles(total.hist),
        buckets={key: tuple(getattr(agg, fields.get(name, name)) for name in BUCKET_FIELDS)
                 for key, agg in ordered.items()},
        bucket_latency={key: stats_rollup.percentiles(agg.hist) for key, agg in ordered.items()},
        latency_exact=False,
    )


def _failure_counts(conn: sa.Connection, where: list[sa.ColumnElement[bool]]) -> list[FailureCount]:
    rows = conn.execute(
        sa.select(runs.c.failure_type, runs.c.failure_code, sa.func.count())
        .where(*where, runs.c.failure_type.is_not(None))
        .group_by(runs.c.failure_type, runs.c.failure_code)
    )
    return [FailureCount(t, c, int(n)) for t, c, n in rows]


def _bucket_rows(
    conn: sa.Connection, where: list[sa.ColumnElement[bool]], unit: str
) -> tuple[dict[BucketKey, tuple[Any, ...]], dict[BucketKey, Percentiles], Percentiles]:
    """Counters and run latency percentiles per time bucket (None: runs whose start is not known yet),
    and the run latency percentiles over all matching runs.
    """
    expr = time_bucket(conn, runs.c.started_at, unit)
    finished_duration = sa.case((_finished(), runs.c.duration_ms), else_=None)
    counters = [
        sa.func.count(),
        *[count_if(runs.c.status == s.value) for s in RunStatus],
        sa.func.coalesce(sa.func.sum(runs.c.step_count), 0),
        sa.func.coalesce(sa.func.sum(runs.c.retry_count), 0),
        count_if(runs.c.retry_count > 0),
        sa.func.coalesce(sa.func.sum(finished_duration), 0.0),
    ]
    pcts: dict[BucketKey, Percentiles] = {}
    overall = Percentiles()
    if is_postgres(conn):
        # One scan: per bucket, plus the grand total (the empty grouping set) for overall percentiles.
        # percentile_cont ignores NULLs, so running runs (NULL via the CASE) do not count.
        rows = conn.execute(
            sa.select(expr, sa.func.grouping(expr), *counters, percentiles_aggregate(finished_duration))
            .where(*where)
            .group_by(sa.func.grouping_sets(sa.tuple_(expr), sa.tuple_()))
        ).all()
        found = {}
        for row in rows:
            ps = Percentiles.of(row[-1]) if row[-1] is not None else Percentiles()
            if row[1]:
                overall = ps
                continue
            key = None if row[0] is None else as_utc(row[0])
            found[key] = tuple(row[2:-1])
            pcts[key] = ps
    else:
        rows = conn.execute(sa.select(expr, *counters).where(*where).group_by(expr)).all()
        found = {(None if row[0] is None else as_utc(row[0])): tuple(row[1:]) for row in rows}
        src = sa.select(expr.label("k0"), finished_duration.label("v")).where(*where).subquery()
        pcts = {(None if k[0] is None else as_utc(k[0])): p for k, p in grouped_percentiles(conn, src).items()}
        overall_src = sa.select(finished_duration.label("v")).where(*where).subquery()
        overall = grouped_percentiles(conn, overall_src).get((), Percentiles())
    # Totals are summed over the buckets in time order, the same on every database.
    ordered = dict(sorted(found.items(), key=lambda kv: (kv[0] is not None, kv[0] or datetime.min)))
    return ordered, pcts, overall


