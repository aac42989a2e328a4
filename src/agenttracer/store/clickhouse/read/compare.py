"""``GET /v1/compare`` on ClickHouse: the SQL store's comparison (``store/sql/read/compare.py``) from the
newest versions of the runs.

The same sample (each version's newest COMPARE_SAMPLE_RUNS finished runs in the window) and the same
definitions; ``compare.assemble`` builds the answer. The sample's steps (at most a few tens of thousands
of rows) come to Python once, where the per-step-type rank sums and percentiles and the run shapes are
computed with ``stats_math``'s pure functions — the very numbers the SQL store's window functions give.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agenttracer.model import RunStatus, StepStatus
from agenttracer.store.clickhouse.newest import Params, Queryable, fetch, in_projects, latest_steps
from agenttracer.store.clickhouse.read.filters import matching_runs
from agenttracer.store.compare_result import Comparison
from agenttracer.store.filters import RunFilters
from agenttracer.store.results import Percentiles
from agenttracer.store.sql.read.compare import (
    BASE,
    CANDIDATE,
    COMPARE_SAMPLE_RUNS,
    SAMPLE_COLUMNS,
    SampleRun,
    assemble,
    step_type_comparisons,
)
from agenttracer.store.sql.read.sql import SHAPE_SEPARATOR, Key
from agenttracer.store.stats_math import QUANTILES, percentile_cont, rank_sums

_SAMPLE = tuple(c.name for c in SAMPLE_COLUMNS)


def compare_versions(
    client: Queryable,
    agent_id: str,
    base: str,
    candidate: str,
    environment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    projects: tuple[str, ...] | None = None,
) -> Comparison:
    """Both versions side by side with candidate − base deltas and significance verdicts."""
    if base == candidate:
        raise ValueError("candidate must differ from base")
    versions = {BASE: base, CANDIDATE: candidate}
    in_window: dict[int, tuple[int, int]] = {}
    sample: dict[int, list[SampleRun]] = {}
    for gv, version in versions.items():
        params: Params = {"limit": COMPARE_SAMPLE_RUNS}
        f = RunFilters(agent_id=agent_id, agent_version=version, environment=environment, since=since,
                       until=until, projects=projects)
        matching = matching_runs(f, (*_SAMPLE, "started_at"), params)
        counted = fetch(client,
            f"SELECT countIf(status != '{RunStatus.RUNNING.value}'), countIf(status = '{RunStatus.RUNNING.value}') "
            f"FROM {matching}", params)[0]
        in_window[gv] = (int(counted[0]), int(counted[1]))
        rows = fetch(client,
            f"SELECT {', '.join(_SAMPLE)} FROM {matching} AND status != '{RunStatus.RUNNING.value}' "
            "ORDER BY started_at DESC, run_id DESC LIMIT {limit:UInt64}", params)
        sample[gv] = [SampleRun(r[0], r[1], None if r[2] is None else float(r[2]), *r[3:]) for r in rows]
    step_types, shapes = _steps(client, sample, projects)
    return assemble(agent_id, environment, since, until, versions, sample, in_window, step_types, shapes)


def _steps(client: Queryable, sample: dict[int, list[SampleRun]], projects: tuple[str, ...] | None
           ) -> tuple[list[Any], dict[Key, int]]:
    """Per step type comparisons and run shapes (counted steps: top-level first attempts) of the sample."""
    group = {r.run_id: gv for gv, rows in sample.items() for r in rows}
    params: Params = {"ids": list(group)}
    scope = [*in_projects(projects, params), "run_id IN {ids:Array(String)}"]
    columns = ("run_id", "seq", "step_type", "latency_ms", "status", "attempt", "retry_of_seq", "parent_seq")
    rows = fetch(client,
        f"SELECT {', '.join(columns)} FROM {latest_steps(columns, scope)} ORDER BY run_id, seq", params
    ) if group else []
    latencies: dict[tuple[int, str], list[float]] = {}
    counts: dict[str, list[int]] = {}
    shape_of: dict[str, list[str]] = {}
    for run_id, _seq, step_type, latency, status, attempt, retry_of, parent in rows:
        gv = group[run_id]
        latencies.setdefault((gv, step_type), []).append(float(latency))
        c = counts.setdefault(step_type, [0, 0, 0, 0])
        c[gv] += 1
        c[2 + gv] += status == StepStatus.ERROR.value
        if attempt == 1 and retry_of is None and parent is None:
            shape_of.setdefault(run_id, []).append(step_type)
    sums = {t: rank_sums(latencies.get((BASE, t), []), latencies.get((CANDIDATE, t), [])) for t in counts}
    pcts: dict[Key, Percentiles] = {}
    for key, values in latencies.items():
        values.sort()
        pcts[key] = Percentiles.of([percentile_cont(values, q) for q in QUANTILES])
    shapes: dict[Key, int] = {}
    for run_id, types in shape_of.items():
        key = (group[run_id], SHAPE_SEPARATOR.join(types))
        shapes[key] = shapes.get(key, 0) + 1
    return step_type_comparisons(counts, sums, pcts), shapes
