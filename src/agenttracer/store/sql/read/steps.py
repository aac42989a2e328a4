"""The per-step part of ``GET /v1/stats``: counts, errors, retries and latency attribution per step type and name.

Reads ``steps`` for the matching runs only, found through the steps' primary key (run_id, seq). On
large histories it reads the steps of the newest STEP_SAMPLE_RUNS matching runs, so its cost stays
bounded whatever the filter; the result says when it did. On PostgreSQL one pass computes both
groupings (``GROUPING SETS``) with their percentiles; SQLite runs the equivalent queries separately.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from agenttracer.model import RunStatus
from agenttracer.store.results import (
    STEP_NAME_LIMIT,
    STEP_SAMPLE_RUNS,
    Percentiles,
    StepBreakdown,
    StepGroupStats,
    untraced,
)
from agenttracer.store.sql.dialect import is_postgres
from agenttracer.store.sql.read.sql import Key, grouped_percentiles, one_of, percentiles_aggregate
from agenttracer.store.sql.rollup.attribution import self_time_sums
from agenttracer.store.sql.rollup.build import step_aggregates
from agenttracer.store.sql.schema.tables import runs, steps
from agenttracer.store.stats_assembly import top_failing
from agenttracer.store.stats_math import ratio


def step_breakdown(
    conn: sa.Connection, where: list[sa.ColumnElement[bool]], total_runs: int, run_time: float, total_steps: int
) -> StepBreakdown:
    """Per step type and per (type, name) numbers for the runs matching ``where``.

    ``run_time`` is the summed duration of the matching finished runs (the attribution denominator);
    ``total_steps`` their step count (an upper bound of the steps read).
    """
    sampled = total_runs > STEP_SAMPLE_RUNS
    source: sa.FromClause
    if sampled:
        # Fetch the newest run ids off the started_at index first and name them to the steps query as
        # a list (found by the steps' primary key): joined to the runs under a LIMIT instead, PostgreSQL
        # misjudges the plan and scans every step. Which runs have finished is known from this fetch,
        # so the steps query needs no join at all.
        sample = conn.execute(
            sa.select(runs.c.run_id, runs.c.status, runs.c.duration_ms)
            .where(*where)
            .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
            .limit(STEP_SAMPLE_RUNS)
        ).all()
        done = sorted((run_id, d) for run_id, status, d in sample
                      if status != RunStatus.RUNNING.value and d is not None)
        run_time = sum(float(d) for _, d in done)
        source = steps
        step_where = [one_of(conn, steps.c.run_id, [row[0] for row in sample])]
        # On the runs: self time is summed over the runs (and their stored self time), not read from steps.
        timed_where = [one_of(conn, runs.c.run_id, [run_id for run_id, _ in done]) if done else sa.false()]
    else:
        source = steps.join(runs, steps.c.run_id == runs.c.run_id)
        step_where = timed_where = list(where)
    aggregates = step_aggregates()
    self_ms = self_time_sums(conn, timed_where, [])
    name_pcts: dict[Key, Percentiles]
    type_pcts: dict[Key, Percentiles]
    if is_postgres(conn):
        # One pass over the steps computes both groupings, percentiles included.
        rows = conn.execute(
            sa.select(steps.c.step_type, steps.c.name, sa.func.grouping(steps.c.name), *aggregates,
                      percentiles_aggregate(steps.c.latency_ms))
            .select_from(source)
            .where(*step_where)
            .group_by(sa.func.grouping_sets(sa.tuple_(steps.c.step_type, steps.c.name), sa.tuple_(steps.c.step_type)))
        ).all()
        agg: list[tuple[Any, ...]] = [tuple(r[:2]) + tuple(r[3:-1]) for r in rows if not r[2]]
        name_pcts = {(r[0], r[1]): Percentiles.of(r[-1]) for r in rows if not r[2]}
        type_pcts = {(r[0],): Percentiles.of(r[-1]) for r in rows if r[2]}
    else:
        agg = [
            tuple(r)
            for r in conn.execute(
                sa.select(steps.c.step_type, steps.c.name, *aggregates)
                .select_from(source)
                .where(*step_where)
                .group_by(steps.c.step_type, steps.c.name)
            )
        ]

        def latencies(*keys: sa.ColumnElement[Any]) -> sa.Subquery:
            cols = [k.label(f"k{i}") for i, k in enumerate(keys)]
            return sa.select(*cols, steps.c.latency_ms.label("v")).select_from(source).where(*step_where).subquery()

        name_pcts = grouped_percentiles(conn, latencies(steps.c.step_type, steps.c.name))
        type_pcts = grouped_percentiles(conn, latencies(steps.c.step_type))

    # Totals per type are summed here from the per-name rows on both databases, so that the floating
    # point additions happen in the same order and both return identical numbers.
    type_acc: dict[str, list[float]] = {}
    names: list[StepGroupStats] = []
    retry_time = step_time = 0.0
    for step_type, name, count, errors, retries, latency, retry_latency in sorted(agg):
        own = self_ms.get((step_type, name), 0.0)
        acc = type_acc.setdefault(step_type, [0, 0, 0, 0.0, 0.0])
        for i, value in enumerate((count, errors, retries, latency, own)):
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
                self_time_ms=own,
                share_of_run_time=ratio(own, run_time),
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
            self_time_ms=float(acc[4]),
            share_of_run_time=ratio(float(acc[4]), run_time),
        )
        for step_type, acc in type_acc.items()
    ]
    types.sort(key=lambda s: (-s.total_latency_ms, s.step_type))
    names.sort(key=lambda s: (-s.total_latency_ms, s.step_type, s.name or ""))
    return StepBreakdown(
        types=types,
        names=names[:STEP_NAME_LIMIT],
        names_truncated=len(names) > STEP_NAME_LIMIT,
        top_failing=top_failing(names),
        retry_time_ms=retry_time,
        step_time_ms=step_time,
        sample_runs=min(total_runs, STEP_SAMPLE_RUNS),
        sampled=sampled,
        run_time_ms=run_time,
        untraced_ms=untraced(run_time, [t.self_time_ms for t in types]),
    )
