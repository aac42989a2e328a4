"""The per-step part of ``GET /v1/stats`` on ClickHouse: counts, errors, retries, latency and self time
per step type and name, as ``store/sql/read/steps.py`` defines them.

The steps of the matching runs are read — of the newest STEP_SAMPLE_RUNS of them when more match, as
on the SQL store — with their newest versions. Counts, sums and exact percentiles
(``quantilesExactInclusive``, which is ``percentile_cont``) are computed by ClickHouse in one
statement for both groupings; self time needs every step interval of a run at once, so the intervals
of the finished runs come to Python and go through the one definition
(``store/self_time.self_times``).
"""

from __future__ import annotations

from typing import Any

from agenttracer.model import RunStatus, StepStatus
from agenttracer.store.clickhouse.newest import Params, Queryable, at, fetch, in_projects, latest_steps, us
from agenttracer.store.results import (
    STEP_NAME_LIMIT,
    STEP_SAMPLE_RUNS,
    Percentiles,
    StepBreakdown,
    StepGroupStats,
    untraced,
)
from agenttracer.store.self_time import self_times
from agenttracer.store.stats_assembly import top_failing
from agenttracer.store.stats_math import ratio

QUANTILES_SQL = "quantilesExactInclusive(0.5, 0.95, 0.99)"
_STEP_COLUMNS = ("run_id", "seq", "step_type", "name", "status", "attempt", "latency_ms", "parent_seq",
                 "started_at", "ended_at")


def percentiles(values: list[float] | None, n: int) -> Percentiles:
    """The three quantiles ClickHouse returned, or none for an empty group (it answers NaN there)."""
    return Percentiles.of(list(values)) if n and values else Percentiles()


# What the breakdown reads of a sampled run: run_id, status, duration_ms, started_at and ended_at (µs).
SampleRow = tuple[Any, ...]
SAMPLE_SELECT = f"run_id, status, duration_ms, {us('started_at')}, {us('ended_at')}"


def newest_sample(client: Queryable, matching: str, params: Params) -> list[SampleRow]:
    """The newest STEP_SAMPLE_RUNS runs of ``matching`` (a FROM text of runs' newest versions)."""
    return fetch(client, f"SELECT {SAMPLE_SELECT} FROM {matching} ORDER BY started_at DESC, run_id DESC "
                 "LIMIT {sample:UInt64}", {**params, "sample": STEP_SAMPLE_RUNS})


def step_breakdown(client: Queryable, sample: list[SampleRow], projects: tuple[str, ...] | None,
                   total_runs: int, run_time: float) -> StepBreakdown:
    """Per step type and per (type, name) numbers for the steps of ``sample`` (``newest_sample``: every
    matching run when at most STEP_SAMPLE_RUNS match); ``run_time`` is the matching finished runs'
    summed duration, recomputed over the sample when it is one."""
    sampled = total_runs > STEP_SAMPLE_RUNS
    runs = {r[0]: r for r in sample}
    if sampled:
        run_time = sum(float(r[2]) for r in runs.values() if r[1] != RunStatus.RUNNING.value and r[2] is not None)
    ids: Params = {"ids": list(runs)}
    scope = [*in_projects(projects, ids), "run_id IN {ids:Array(String)}"]
    starts = [int(r[3]) for r in runs.values() if r[3] is not None]
    if starts:
        # No step starts before its run: the sample's earliest start bounds the steps' time (a sorting-key
        # column, and the partition key), so only the sample's hours are merged, not the table.
        ids["first"] = min(starts)
        scope.append(f"started_at >= {at('first')}")
    steps_from = latest_steps(_STEP_COLUMNS, scope)
    rows = fetch(client,
        f"SELECT step_type, name, grouping(name), count(), countIf(status = '{StepStatus.ERROR.value}'), "
        "countIf(attempt > 1), sum(latency_ms), sumIf(latency_ms, attempt > 1), "
        f"{QUANTILES_SQL}(latency_ms) FROM {steps_from} "
        "GROUP BY GROUPING SETS ((step_type, name), (step_type))", ids)
    self_ms = _self_time_sums(client, steps_from, ids, runs)
    return assemble(rows, self_ms, run_time, sample_runs=min(total_runs, STEP_SAMPLE_RUNS), sampled=sampled)


def assemble(rows: list[tuple[Any, ...]], self_ms: dict[tuple[str, str], float], run_time: float, *,
             sample_runs: int, sampled: bool) -> StepBreakdown:
    """The breakdown from grouped step rows — step_type, name, grouping(name), count, errors, retries,
    summed latency, summed retry latency, the three latency quantiles — over both groupings (per (type,
    name) and per type), and the self time summed by (type, name)."""
    agg = sorted(tuple(r[:2]) + tuple(r[3:8]) for r in rows if not r[2])
    name_pcts = {(r[0], r[1]): percentiles(r[8], r[3]) for r in rows if not r[2]}
    type_pcts = {r[0]: percentiles(r[8], r[3]) for r in rows if r[2]}
    type_acc: dict[str, list[float]] = {}
    names: list[StepGroupStats] = []
    retry_time = step_time = 0.0
    for step_type, name, count, errors, retries, latency, retry_latency in agg:
        if not count:
            continue
        own = self_ms.get((step_type, name), 0.0)
        acc = type_acc.setdefault(step_type, [0, 0, 0, 0.0, 0.0])
        for i, value in enumerate((count, errors, retries, latency, own)):
            acc[i] += value
        retry_time += float(retry_latency)
        step_time += float(latency)
        names.append(StepGroupStats(
            step_type=step_type, name=name, count=int(count), error_count=int(errors),
            error_rate=int(errors) / int(count), retry_count=int(retries),
            latency_ms=name_pcts.get((step_type, name), Percentiles()), total_latency_ms=float(latency),
            self_time_ms=own, share_of_run_time=ratio(own, run_time)))
    types = [
        StepGroupStats(
            step_type=step_type, name=None, count=int(acc[0]), error_count=int(acc[1]),
            error_rate=acc[1] / acc[0], retry_count=int(acc[2]),
            latency_ms=type_pcts.get(step_type, Percentiles()), total_latency_ms=float(acc[3]),
            self_time_ms=float(acc[4]), share_of_run_time=ratio(float(acc[4]), run_time))
        for step_type, acc in type_acc.items()
    ]
    types.sort(key=lambda s: (-s.total_latency_ms, s.step_type))
    names.sort(key=lambda s: (-s.total_latency_ms, s.step_type, s.name or ""))
    return StepBreakdown(
        types=types, names=names[:STEP_NAME_LIMIT], names_truncated=len(names) > STEP_NAME_LIMIT,
        top_failing=top_failing(names), retry_time_ms=retry_time, step_time_ms=step_time,
        sample_runs=sample_runs, sampled=sampled, run_time_ms=run_time,
        untraced_ms=untraced(run_time, [t.self_time_ms for t in types]),
    )


def _self_time_sums(client: Queryable, steps_from: str, params: Params,
                    runs: dict[str, tuple[Any, ...]]) -> dict[tuple[str, str], float]:
    """Summed self time (ms) by (step_type, name) of the steps of the finished runs with both ends."""
    timed = {run_id: (r[3], r[4]) for run_id, r in runs.items()
             if r[1] != RunStatus.RUNNING.value and r[2] is not None and r[3] is not None and r[4] is not None}
    sums: dict[tuple[str, str], float] = {}
    if not timed:
        return sums
    rows = fetch(client,
        f"SELECT run_id, seq, parent_seq, {us('started_at')}, {us('ended_at')}, step_type, name FROM {steps_from} "
        "ORDER BY run_id", params)
    by_run: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        if row[0] in timed:
            by_run.setdefault(row[0], []).append(row)
    for run_id, group in by_run.items():
        start, end = timed[run_id]
        times, _untraced = self_times(int(start), int(end), [
            (int(r[1]), None if r[2] is None else int(r[2]), int(r[3]), int(r[4])) for r in group])
        for row, ms in zip(group, times, strict=True):
            key = (row[5], row[6])
            sums[key] = sums.get(key, 0.0) + ms
    return sums
