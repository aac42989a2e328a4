"""``GET /v1/compare`` on ClickHouse: the SQL store's comparison (``store/sql/read/compare.py``) from the
newest versions of the runs.

The same sample (each version's newest COMPARE_SAMPLE_RUNS finished runs in the window, read a page
at a time: ``newest_runs.newest_first``) and the same definitions; ``compare.assemble`` builds the
answer. The sample's steps are aggregated by ClickHouse in one statement, as the SQL store's
statement does: per step type and version the count, errors, exact percentiles
(``quantilesExactInclusive``: ``percentile_cont``) and the Mann–Whitney rank sums (tie-averaged ranks
over both versions pooled, from one window: ``rank()`` is the first position of a tie group and the
running ``count()`` its last), and per version the run shapes' counts. Only those few rows come back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agenttracer.model import RunStatus, StepStatus
from agenttracer.store.clickhouse.newest import (
    Params,
    Queryable,
    at,
    fetch,
    in_projects,
    latest_runs,
    latest_steps,
    us,
)
from agenttracer.store.clickhouse.read.filters import stable, time_window
from agenttracer.store.clickhouse.read.newest_runs import newest_first, table_span
from agenttracer.store.clickhouse.read.steps import QUANTILES_SQL, percentiles
from agenttracer.store.compare_assembly import (
    BASE,
    CANDIDATE,
    COMPARE_SAMPLE_RUNS,
    SHAPE_SEPARATOR,
    SampleRun,
    assemble,
    step_type_comparisons,
)
from agenttracer.store.compare_result import Comparison
from agenttracer.store.filters import RunFilters
from agenttracer.store.results import Percentiles
from agenttracer.store.stats_math import Key, RankSums, combine_rank_sums

_SAMPLE = SampleRun._fields
_RUNNING = RunStatus.RUNNING.value
_ID_SEPARATOR = "\x1f"


def _split(name: str) -> str:
    """The run ids of the string parameter ``name`` (joined by _ID_SEPARATOR) as an array."""
    return f"splitByChar(char({ord(_ID_SEPARATOR)}), {{{name}:String}})"


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
    in_window = _in_window(client, agent_id, versions, environment, since, until, projects)
    sample: dict[int, list[SampleRun]] = {}
    starts: list[int] = []
    span = table_span(client)
    for gv, version in versions.items():
        f = RunFilters(agent_id=agent_id, agent_version=version, environment=environment, since=since,
                       until=until, projects=projects)
        rows = newest_first(client, f, f"{', '.join(_SAMPLE)}, {us('started_at')}", (*_SAMPLE, "started_at"), {},
                            COMPARE_SAMPLE_RUNS, also=[f"status != '{_RUNNING}'"], span=span)
        sample[gv] = [SampleRun(r[0], r[1], None if r[2] is None else float(r[2]), *r[3:-1]) for r in rows]
        starts.extend(int(r[-1]) for r in rows)
    step_types, shapes = _steps(client, agent_id, sample, min(starts, default=0), projects)
    return assemble(agent_id, environment, since, until, versions, sample, in_window, step_types, shapes)


def _in_window(client: Queryable, agent_id: str, versions: dict[int, str], environment: str | None,
               since: datetime | None, until: datetime | None, projects: tuple[str, ...] | None
               ) -> dict[int, tuple[int, int]]:
    """(finished, running) runs of each version in the window, both versions in one statement."""
    params: Params = {"versions": list(versions.values())}
    f = RunFilters(agent_id=agent_id, environment=environment, since=since, until=until, projects=projects)
    scope = [*stable(f, params), "agent_version IN {versions:Array(String)}", *time_window(f, params)]
    rows = fetch(client, f"SELECT agent_version, countIf(status != '{_RUNNING}'), countIf(status = '{_RUNNING}') "
                         f"FROM {latest_runs(('agent_version', 'status'), scope)} GROUP BY agent_version", params)
    counted = {version: (int(done), int(running)) for version, done, running in rows}
    return {gv: counted.get(version, (0, 0)) for gv, version in versions.items()}


def _steps(client: Queryable, agent_id: str, sample: dict[int, list[SampleRun]], first_start: int,
           projects: tuple[str, ...] | None) -> tuple[list[Any], dict[Key, int]]:
    """Per step type comparisons and run shapes (counted steps: top-level first attempts) of the sample."""
    ids = [r.run_id for rows in sample.values() for r in rows]
    if not ids:
        return [], {}
    candidates = [r.run_id for r in sample[CANDIDATE]]
    # The ids travel as one string each, split by the engine: an Array(String) parameter of 4,000 ids
    # took ~10 ms to bind. Stored ids hold no control characters (model.has_bad_chars), so the separator
    # cannot occur inside one.
    if any(_ID_SEPARATOR in i for i in ids):
        raise ValueError("a run id holds a control character")
    params: Params = {"ids": _ID_SEPARATOR.join(ids), "candidates": _ID_SEPARATOR.join(candidates),
                      "agent": agent_id, "first": first_start, "sep": SHAPE_SEPARATOR}
    # The sample's steps lie in the agent's hours from its earliest run's start on (no step starts before
    # its run; '' holds steps stored before their run's start arrived): the run_id bloom filter probes
    # only those granules.
    scope = [*in_projects(projects, params), "agent_id IN ({agent:String}, '')", f"started_at >= {at('first')}",
             f"run_id IN {_split('ids')}"]
    columns = ("run_id", "seq", "step_type", "latency_ms", "status", "attempt", "retry_of_seq", "parent_seq")
    counted = "attempt = 1 AND retry_of_seq IS NULL AND parent_seq IS NULL"
    # The steps are read once (a subquery named twice would be read twice): grouped by run into its
    # shape and its steps, which ARRAY JOIN turns back into rows for the ranks and percentiles. Each
    # run's shape rides on its first step's row and is counted in that row's group, as a map of shape
    # to runs; the maps of a version's groups add up to its shapes.
    runs_of = (
        f"SELECT toUInt8(any(run_id) IN {_split('candidates')}) AS grp, "
        "groupArray((step_type, latency_ms, status)) AS steps, "
        f"countIf({counted}) > 0 AS shaped, arrayStringConcat(arrayMap(x -> x.2, "
        f"arraySort(groupArrayIf((seq, step_type), {counted}))), {{sep:String}}) AS shape "
        f"FROM {latest_steps(columns, scope)} GROUP BY run_id")
    error = StepStatus.ERROR.value
    rows = fetch(
        client,
        f"SELECT grp, step_type, count() AS n, countIf(status = '{error}'), sum(r), sum(tt), "
        f"{QUANTILES_SQL}(latency_ms), sumMapIf(map(shape, toUInt64(1)), i = 1 AND shaped) FROM ("
        "SELECT grp, shape, shaped, i, s.1 AS step_type, s.2 AS latency_ms, s.3 AS status, "
        "rank() OVER w AS lo, count() OVER w AS hi, (lo + hi) / 2 AS r, (hi - lo + 1) * (hi - lo + 1) - 1 AS tt "
        f"FROM ({runs_of}) ARRAY JOIN steps AS s, arrayEnumerate(steps) AS i "
        "WINDOW w AS (PARTITION BY step_type ORDER BY latency_ms)) GROUP BY grp, step_type", params)
    counts: dict[str, list[int]] = {}
    parts: dict[Key, tuple[Any, ...]] = {}
    pcts: dict[Key, Percentiles] = {}
    shapes: dict[Key, int] = {}
    for grp, label, n, errors, rank_sum, tie_term, ps, shaped in rows:
        gv = int(grp)
        c = counts.setdefault(label, [0, 0, 0, 0])
        c[gv] += int(n)
        c[2 + gv] += int(errors)
        parts[(gv, label)] = (int(n), float(rank_sum), float(tie_term))
        pcts[(gv, label)] = percentiles(ps, int(n))
        for shape, runs in shaped.items():
            shapes[(gv, shape)] = shapes.get((gv, shape), 0) + int(runs)
    sums: dict[str, RankSums] = {t: combine_rank_sums(parts.get((BASE, t)), parts.get((CANDIDATE, t)))
                                 for t in counts}
    return step_type_comparisons(counts, sums, pcts), shapes
