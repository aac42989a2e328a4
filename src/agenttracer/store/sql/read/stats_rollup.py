"""``GET /v1/stats`` from the rollups: rolled-up hours and days from rollup rows, everything else from raw.

``store/sql/rollup/window.py`` splits the window into clean whole hours (read from the hourly or daily
rollup rows) and the rest — partial edge hours, dirty hours, the hours not rolled up yet — which is
aggregated from the raw tables by the same code that builds the rollups (``rollup.aggregate_raw``). A
partial edge hour whose part outside the window is the shorter one is read as the hour's rollup minus
that rest (``_gather``): the dashboard's mid-hour "last 24 h" reads on average half the raw steps.

Counts, rates and sums are therefore always exact; latency percentiles come from the merged
histograms, within 1 % of the exact value (``store/histogram.py``). The exact path
(``store/sql/read/stats.py``) still answers, with exact percentiles, when this one does not apply:

* filters the rollups do not keep: status, failure type or code, step name;
* a window without any clean hour (nothing rolled up yet, or a window inside the live hour);
* at most EXACT_MAX_RUNS matching runs: exact is cheap then, and small samples are where a user
  compares individual latencies by eye.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agenttracer.model import RunStatus
from agenttracer.store.filters import RunFilters
from agenttracer.store.histogram import Histogram
from agenttracer.store.results import (
    STEP_NAME_LIMIT,
    TOP_FAILING_STEPS,
    FailingStep,
    Percentiles,
    StepBreakdown,
    StepGroupStats,
    untraced,
)
from agenttracer.store.sql.expressions import time_bucket
from agenttracer.store.sql.read.filters import in_projects, run_conditions
from agenttracer.store.sql.rollup.aggregates import RunAgg, StepAgg
from agenttracer.store.sql.rollup.build import FULL, aggregate_raw, identity_keys, level_for, read_rollup
from agenttracer.store.sql.rollup.window import Window, plan, raw_condition
from agenttracer.store.sql.schema.tables import runs
from agenttracer.store.stats_assembly import HOUR
from agenttracer.store.stats_math import ratio

EXACT_MAX_RUNS = 2_000


def applies(filters: RunFilters) -> bool:
    """Whether the rollups keep every dimension these filters use."""
    if any(v is not None for v in (filters.status, filters.failure_type, filters.failure_code, filters.step_name)):
        return False
    # '' is how the rollups store "no identity yet": such a filter must not match placeholders.
    return "" not in (filters.agent_id, filters.agent_version, filters.environment)


class RollupStats:
    """What the rollup path computed for a window: per-bucket runs, failures, steps."""

    def __init__(self, buckets: dict[datetime | None, RunAgg], failures: dict[tuple[str, str], int],
                 steps: dict[tuple[str, str], StepAgg]) -> None:
        self.buckets = buckets
        self.failures = failures
        self.steps = steps

    def total(self) -> RunAgg:
        out = RunAgg()
        for agg in self.buckets.values():
            out.add(agg)
        return out


def collect(
    conn: sa.Connection, filters: RunFilters, start: datetime, end: datetime | None, unit: str
) -> RollupStats | None:
    """The window's numbers from rollups + raw, or None when the exact path must answer."""
    if not applies(filters):
        return None
    window = plan(conn, start, end, unit, open_start=filters.since is None, edges=True)
    if window is None:
        return None
    stats = _gather(conn, filters, window, unit)
    if stats is None:
        # An edge hour's rollup disagreed with its raw rows (a rollup left stale, e.g. by a write whose
        # dirty mark went missing; ``tune`` gives the statements one snapshot, so not a write between them):
        # read the edges directly instead.
        window = plan(conn, start, end, unit, open_start=filters.since is None, edges=False)
        stats = _gather(conn, filters, window, unit) if window is not None else None
        if stats is None:
            return None
    if sum(agg.runs for agg in stats.buckets.values()) <= EXACT_MAX_RUNS:
        return None
    return stats


# What an edge hour's rollup must agree on with its raw rows before the rollup minus the rest is trusted.
_CHECKED = ("runs", "running", "success", "failure", "partial", "steps", "retry_steps", "runs_with_retries")


def _bucket_key(start: datetime | None, unit: str) -> datetime | None:
    """The timeline bucket of a rollup bucket (an hour or day; the live region's are minutes and 10 s)."""
    if start is None:
        return None
    hour = start.replace(minute=0, second=0, microsecond=0)
    return hour if unit == "hour" else hour.replace(hour=0)


def _gather(conn: sa.Connection, filters: RunFilters, window: Window, unit: str) -> RollupStats | None:
    """Rollup rows + raw parts of ``window``; None when an edge hour's rollup and raw rows disagree.

    An edge hour read as rollup minus rest: its runs (and so its timeline bucket and last start) come from
    the raw rows of the whole hour, which also check the rollup; its failures and steps are the hour's
    rollup minus those of the rest of the hour, so only the rest's steps are read raw.
    """
    level = level_for(filters.agent_id, filters.agent_version, filters.environment)
    identity = (filters.agent_id, filters.agent_version, filters.environment)
    stored = read_rollup(conn, window.spans, level, identity, projects=filters.projects)
    edge_hours = {hour for hour, _ in window.edges}
    whole = {hour: stored.runs.pop(("hour", hour), RunAgg()) for hour in edge_hours}
    buckets: dict[datetime | None, RunAgg] = {}
    for (_grain, bucket_start), agg in stored.runs.items():
        _add(buckets, _bucket_key(bucket_start, unit), agg)
    failures = dict(stored.failures)
    step_aggs = dict(stored.steps)
    if not window.raw and not window.edges:
        return RollupStats(buckets, failures, step_aggs)
    identity_only = RunFilters(agent_id=filters.agent_id, agent_version=filters.agent_version,
                               environment=filters.environment, projects=filters.projects)
    conds = run_conditions(identity_only)
    hour = time_bucket(conn, runs.c.started_at, "hour")
    rest_intervals: list[tuple[datetime | None, datetime | None]] = [rest for _, rest in window.edges]
    # 1 for a run in the rest of an edge hour, 0 for one in the window (a key only when there are edges).
    in_rest: list[sa.ColumnElement[Any]] = (
        [sa.case((raw_condition(rest_intervals), 1), else_=0)] if window.edges else []
    )
    whole_hours: list[tuple[datetime | None, datetime | None]] = [(h, h + HOUR) for h in sorted(edge_hours)]
    raw = aggregate_raw(
        conn, [*conds, raw_condition([*window.raw, *whole_hours])], [hour, *in_rest], in_rest,
        time_keys=(True, *(False for _ in in_rest)),
        step_where=[*conds, raw_condition([*window.raw, *rest_intervals])],
    )
    if not window.edges:  # the same shapes as with edges: everything is in the window
        raw.runs = {(key[0], 0): agg for key, agg in raw.runs.items()}
        raw.failures = {(key[0], 0, *key[1:]): n for key, n in raw.failures.items()}
        raw.steps = {(0, *key): agg for key, agg in raw.steps.items()}
    parts: dict[tuple[datetime, int], RunAgg] = {}
    for (start, rest), agg in raw.runs.items():
        if start in edge_hours:
            parts[(start, rest)] = agg
        else:
            _add(buckets, _bucket_key(start, unit), agg)
    for start in edge_hours:
        part, rest_agg = parts.get((start, 0), RunAgg()), parts.get((start, 1), RunAgg())
        if any(getattr(whole[start], n) != getattr(part, n) + getattr(rest_agg, n) for n in _CHECKED):
            return None
        if part.runs:
            _add(buckets, _bucket_key(start, unit), part)
    for (start, rest, failure_type, failure_code), n in raw.failures.items():
        if start in edge_hours and not rest:
            continue  # in the edge hour's rollup already
        key = (failure_type, failure_code)
        failures[key] = failures.get(key, 0) + (-n if rest else n)
    rest_steps = 0
    for (rest, step_type, name), step in raw.steps.items():
        found = step_aggs.get((step_type, name))
        if rest:
            rest_steps += step.steps
            if found is None or not found.subtract(step):
                return None
        elif found is None:
            step_aggs[(step_type, name)] = step
        else:
            found.add(step)
    if rest_steps != sum(agg.steps for (_, rest), agg in parts.items() if rest):
        return None  # the runs' step counts and the steps disagree (without one snapshot: a write in between)
    if min(failures.values(), default=0) < 0:
        return None
    failures = {key: n for key, n in failures.items() if n}
    step_aggs = {key: agg for key, agg in step_aggs.items() if agg.steps}
    return RollupStats(buckets, failures, step_aggs)


def _add(buckets: dict[datetime | None, RunAgg], key: datetime | None, agg: RunAgg) -> None:
    found = buckets.get(key)
    if found is None:
        buckets[key] = agg
    else:
        found.add(agg)


def percentiles(hist: Histogram) -> Percentiles:
    return Percentiles.of(hist.percentiles())


def step_breakdown_from(stats: RollupStats, total_runs: int, run_time: float) -> StepBreakdown:
    """The per-step numbers of every matching run (no sampling), as ``steps.step_breakdown``."""
    names: list[StepGroupStats] = []
    types: dict[str, StepAgg] = {}
    retry_time = step_time = 0.0
    for (step_type, name), agg in sorted(stats.steps.items()):
        if not agg.steps:
            continue
        acc = types.get(step_type)
        if acc is None:
            acc = types[step_type] = StepAgg()
        acc.add(agg)
        retry_time += agg.retry_latency_ms
        step_time += agg.latency_ms
        names.append(_group(step_type, name, agg, run_time))
    type_stats = [_group(t, None, agg, run_time) for t, agg in types.items()]
    type_stats.sort(key=lambda s: (-s.total_latency_ms, s.step_type))
    names.sort(key=lambda s: (-s.total_latency_ms, s.step_type, s.name or ""))
    failing = [s for s in names if s.error_count]
    failing.sort(key=lambda s: (-s.error_count, -s.error_rate, s.step_type, s.name or ""))
    return StepBreakdown(
        types=type_stats,
        names=names[:STEP_NAME_LIMIT],
        names_truncated=len(names) > STEP_NAME_LIMIT,
        top_failing=[FailingStep(s.step_type, s.name or "", s.error_count, s.count, s.error_rate)
                     for s in failing[:TOP_FAILING_STEPS]],
        retry_time_ms=retry_time,
        step_time_ms=step_time,
        sample_runs=total_runs,
        sampled=False,
        run_time_ms=run_time,
        untraced_ms=untraced(run_time, [t.self_time_ms for t in type_stats]),
    )


def _group(step_type: str, name: str | None, agg: StepAgg, run_time: float) -> StepGroupStats:
    return StepGroupStats(
        step_type=step_type,
        name=name,
        count=agg.steps,
        error_count=agg.errors,
        error_rate=agg.errors / agg.steps,
        retry_count=agg.retries,
        latency_ms=percentiles(agg.hist),
        total_latency_ms=float(agg.latency_ms),
        self_time_ms=agg.self_ms,
        share_of_run_time=ratio(agg.self_ms, run_time),
    )


def status_counts(total: RunAgg) -> dict[str, int]:
    return {s.value: total.status_count(s.value) for s in RunStatus}


def agent_counts(
    conn: sa.Connection, projects: tuple[str, ...] | None = None
) -> dict[tuple[str, str, str], RunAgg] | None:
    """Runs and last start per (agent, version, environment) over all time in ``projects``, for ``GET
    /v1/agents``; None when nothing is rolled up yet (the caller counts from the raw table)."""
    inside = in_projects(projects)
    first = conn.execute(sa.select(sa.func.min(runs.c.started_at)).where(*inside)).scalar()
    if first is None:
        return None
    window = plan(conn, first, None, "day", open_start=True)
    if window is None:
        return None
    stored = read_rollup(conn, window.spans, FULL, (None, None, None), by_identity=True, with_steps=False,
                         with_hist=False, projects=projects)
    out: dict[tuple[str, str, str], RunAgg] = {}
    for key, agg in stored.runs.items():
        _add_identity(out, key, agg)
    if window.raw:
        raw = aggregate_raw(conn, [*inside, runs.c.agent_id.is_not(None), raw_condition(window.raw)],
                            identity_keys(), [], with_steps=False)
        for key, agg in raw.runs.items():
            _add_identity(out, key, agg)
    return out


def _add_identity(out: dict[tuple[str, str, str], RunAgg], key: tuple[Any, ...], agg: RunAgg) -> None:
    if not key[0]:  # placeholders without identity are not an agent
        return
    identity = (str(key[0]), str(key[1]), str(key[2]))
    found = out.get(identity)
    if found is None:
        out[identity] = agg
    else:
        found.add(agg)


def version_counts(
    conn: sa.Connection,
    agent_id: str,
    versions: list[str],
    environment: str | None,
    since: datetime | None,
    until: datetime | None,
    projects: tuple[str, ...] | None = None,
) -> dict[str, RunAgg] | None:
    """Runs (and running runs) of each of ``versions`` of one agent in [since, until), for ``GET /v1/compare``.

    Exact, like every rollup count: clean hours and days from the rollup rows, the rest from raw.
    None when the rollups cannot answer (no ``since``, nothing rolled up in the window, an identity
    the rollups store as a placeholder): the caller counts the raw runs.
    """
    if since is None or "" in (agent_id, environment, *versions):
        return None
    window = plan(conn, since, until, "day", open_start=False)
    if window is None:
        return None
    level = level_for(agent_id, versions[0], environment)
    stored = read_rollup(conn, window.spans, level, (agent_id, None, environment), by_identity=True,
                         with_steps=False, with_hist=False, projects=projects)
    out = {version: RunAgg() for version in versions}
    for (_agent, version, _env), agg in stored.runs.items():
        if version in out:
            out[version].add(agg)
    if window.raw:
        where = [
            *run_conditions(RunFilters(agent_id=agent_id, environment=environment, projects=projects)),
            runs.c.agent_version.in_(versions),
            raw_condition(window.raw),
        ]
        raw = aggregate_raw(conn, where, [runs.c.agent_version], [], with_steps=False)
        for (version,), agg in raw.runs.items():
            out[version].add(agg)
    return out
