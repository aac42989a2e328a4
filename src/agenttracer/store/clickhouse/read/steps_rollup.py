"""The per-step part of ``GET /v1/stats`` on the rollup path: every matching run, no sample.

The clean units' numbers come from ``rollup_steps`` (store/clickhouse/rollup_steps.py) and the clean days'
from ``rollup_steps_daily`` (rollup_days.py), the other runs of
the window — edge hours, units changed since they were rolled up, hours not rolled up yet — from the
newest versions of their steps, in the same statement: counts and sums exact, the latency percentiles read
from merged bucket counts of the SQL store's histogram (store/clickhouse/histogram.py), as the SQL store
reads its step rollups: within 1 % of the exact value.
Self time is the stored one (computed once per finished run by the refresher); only the finished runs
of the raw part that the refresher has not attributed yet are walked here, with the same definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agenttracer.store.clickhouse.histogram import percentiles, with_bounds
from agenttracer.store.clickhouse.newest import Params, Queryable, fetch
from agenttracer.store.clickhouse.read.steps import assemble
from agenttracer.store.clickhouse.rollup_steps import (
    STEP_AGGREGATES,
    current_self_time,
    steps_of,
    unattributed_self_time,
)
from agenttracer.store.results import StepBreakdown


@dataclass(frozen=True)
class Rest:
    """The runs a stats window reads raw: ``runs`` (newest run versions with ``RUN_READ``-like columns); ``scope``
    narrows their steps on the sorting key, ``first`` bounds the steps' start, ``self_where`` narrows their
    stored self time."""

    runs: str
    scope: Sequence[str]
    first: str
    self_where: Sequence[str]
    attributed: bool = False  # every finished run of ``runs`` has its self time stored: none is walked


_ROLLED = ("step_type, name, steps, errors, retries, latency_ms AS step_ms, retry_latency_ms AS retry_ms, "
           "latency_buckets, self_ms AS own_ms")


def rolled_breakdown(q: Queryable, hourly: Sequence[str] | None, daily: Sequence[str] | None, rest: Rest | None,
                     params: Params, total_runs: int, run_time: float) -> StepBreakdown:
    """The breakdown of the rollup rows of ``hourly`` (conditions on rollup_steps) and ``daily`` (on
    rollup_steps_daily), and of the runs of ``rest``; None reads no part there."""
    parts = [f"SELECT {_ROLLED} FROM {table} FINAL WHERE {' AND '.join(where)}"
             for table, where in (("rollup_steps", hourly), ("rollup_steps_daily", daily)) if where is not None]
    if rest is not None:
        counted = (f"{with_bounds()} SELECT step_type, name, {', '.join(STEP_AGGREGATES)} "
                   f"FROM {steps_of(rest.runs, rest.scope, rest.first)} GROUP BY step_type, name")
        own = (f"SELECT step_type, name, sum(self_ms) AS own_ms FROM {current_self_time(rest.runs, rest.self_where)} "
               "GROUP BY step_type, name")
        parts.append("SELECT a.step_type, a.name, a.steps, a.errors, a.retries, a.step_ms, a.retry_ms, "
                     f"a.latency_buckets, b.own_ms FROM ({counted}) AS a LEFT JOIN ({own}) AS b "
                     "USING (step_type, name)")
    # One grouping in SQL, by (type, name); the types' bucket counts are added here (a few hundred buckets a
    # name), which costs less than merging every rollup row's map a second time for a GROUPING SETS.
    rows = fetch(q,
        "SELECT step_type, name, sum(steps), sum(errors), sum(retries), sum(step_ms), sum(retry_ms), "
        f"sumMap(latency_buckets), sum(own_ms) FROM ({' UNION ALL '.join(parts)}) GROUP BY step_type, name", params)
    self_ms: dict[tuple[str, str], float] = {(r[0], r[1]): float(r[8]) for r in rows}
    if rest is not None and not rest.attributed:
        for key, ms in unattributed_self_time(q, rest.runs, rest.scope, rest.first, rest.self_where, params).items():
            self_ms[key] = self_ms.get(key, 0.0) + ms
    grouped: list[tuple[Any, ...]] = []
    by_type: dict[str, dict[int, int]] = {}
    for r in rows:
        counts = {int(b): int(n) for b, n in dict(r[7]).items()}
        merged = by_type.setdefault(r[0], {})
        for b, n in counts.items():
            merged[b] = merged.get(b, 0) + n
        grouped.append((r[0], r[1], 0, *r[2:7], _levels(counts)))
    for step_type, counts in by_type.items():
        grouped.append((step_type, None, 1, sum(counts.values()), 0, 0, 0.0, 0.0, _levels(counts)))
    return assemble(grouped, self_ms, run_time, sample_runs=total_runs, sampled=False)


def _levels(counts: dict[int, int]) -> list[float | None]:
    ps = percentiles(counts)
    return [ps.p50, ps.p95, ps.p99]
