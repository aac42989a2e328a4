"""Content-free comparison of two versions of an agent, for ``GET /v1/compare``.

Everything is computed from the execution shape (statuses, latencies, step types, retries and
failure codes), never from content. Only *finished* runs of each version count (a running run has
no outcome yet), in the optional environment and ``[since, until)`` window on ``started_at``.
Deltas are candidate − base; each comes with a two-sided test from ``stats_math`` (rates: two-
proportion z-test; latencies and steps per run: Mann–Whitney U), whose verdict says
``insufficient_data`` when the sample is too small to tell.

Run *shape*: the step types of a run's top-level first attempts in ``seq`` order, e.g.
``plan > retrieval > tool > respond``. Retries (``attempt > 1`` or a ``retry_of_seq``) and nested
steps (with a ``parent_seq``) are left out, so a run whose tool call needed a retry has the same
shape as one that did not, and sub-steps do not multiply shapes; retry rate and per-step-type
numbers cover those.

To bound the work on large histories, the comparison reads the newest COMPARE_SAMPLE_RUNS finished
runs of each version in the window (every test stays valid on such a sample; each side reports how
many runs it compared and how many finished in the window). The sample's run rows are fetched once
(one select per version, stopping after COMPARE_SAMPLE_RUNS rows) and every run-level number is
computed from them in Python; the steps of the sample are read once, by primary key, in one
statement that aggregates them per step type and per run shape. ``bench/benchlib/explain_compare.py``
shows each statement with its plan.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from agenttracer.model import RunStatus, StepStatus, StepType
from agenttracer.store.compare_result import (
    Comparison,
    Delta,
    FailureMixRow,
    PercentileDelta,
    ShapeRow,
    StepTypeComparison,
    VersionSide,
)
from agenttracer.store.filters import RunFilters
from agenttracer.store.results import Percentiles
from agenttracer.store.sql.dialect import is_postgres
from agenttracer.store.sql.expressions import count_if
from agenttracer.store.sql.read import stats_rollup
from agenttracer.store.sql.read.filters import run_conditions
from agenttracer.store.sql.read.sql import (
    SHAPE_SEPARATOR,
    Key,
    Members,
    bytewise,
    combine_rank_sums,
    grouped_percentiles,
    percentiles_aggregate,
    rank_sum_parts,
    ranked,
    run_shapes_select,
    tune,
)
from agenttracer.store.sql.schema.tables import runs, steps
from agenttracer.store.stats_math import (
    ALPHA,
    MIN_EXPECTED,
    MIN_SAMPLE,
    QUANTILES,
    SIGNIFICANT,
    RankSums,
    mann_whitney_u,
    percentile_cont,
    rank_sums,
    ratio,
    two_proportion_z,
)

COMPARE_SAMPLE_RUNS = 2_000
TOP_SHAPES = 10
MAX_SHAPE_LENGTH = 30  # longer shapes are cut here and end with "…"
ELLIPSIS = "…"
BASE, CANDIDATE = 0, 1


def compare_versions(
    conn: sa.Connection,
    agent_id: str,
    base: str,
    candidate: str,
    environment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    projects: tuple[str, ...] | None = None,
) -> Comparison:
    """Both versions side by side with candidate − base deltas and significance verdicts, over the runs
    of ``projects`` (None: every project)."""
    if base == candidate:
        raise ValueError("candidate must differ from base")
    tune(conn)
    window = run_conditions(
        RunFilters(agent_id=agent_id, environment=environment, since=since, until=until, projects=projects)
    )
    versions = {BASE: base, CANDIDATE: candidate}
    counted = stats_rollup.version_counts(conn, agent_id, [base, candidate], environment, since, until, projects)
    if counted is not None:
        in_window = {gv: (counted[v].runs - counted[v].running, counted[v].running) for gv, v in versions.items()}
    else:
        in_window = _in_window(conn, window, versions)

    # The sample: each version's newest finished runs, fetched once with every run-level column the
    # comparison needs (at most 2 × COMPARE_SAMPLE_RUNS rows); the run-level numbers are computed
    # from these rows in Python, identically on both databases. One select per version (no IN over
    # both) lets PostgreSQL walk (agent_id, agent_version, started_at) backwards and stop early.
    newest = {
        gv: sa.select(*SAMPLE_COLUMNS)
        .where(*window, runs.c.agent_version == version, runs.c.status != RunStatus.RUNNING.value)
        .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        .limit(COMPARE_SAMPLE_RUNS)
        for gv, version in versions.items()
    }
    sample = {gv: [SampleRun(*row) for row in conn.execute(stmt)] for gv, stmt in newest.items()}
    ids_only = {gv: stmt.with_only_columns(runs.c.run_id) for gv, stmt in newest.items()}
    compared = Members(conn, list(ids_only.values()), [r.run_id for gv in versions for r in sample[gv]])
    is_candidate = Members(conn, [ids_only[CANDIDATE]], [r.run_id for r in sample[CANDIDATE]])
    # Step queries name the ids on steps.run_id, so the database looks them up by primary key, and
    # tell the versions apart by run id too: no join with runs.
    step_where = [compared.on(steps.c.run_id)]
    step_grp = sa.case((is_candidate.on(steps.c.run_id), CANDIDATE), else_=BASE)

    step_types, shapes = _steps(conn, step_where, step_grp)
    return assemble(agent_id, environment, since, until, versions, sample, in_window, step_types, shapes)


def assemble(
    agent_id: str,
    environment: str | None,
    since: datetime | None,
    until: datetime | None,
    versions: dict[int, str],
    sample: dict[int, list[SampleRun]],
    in_window: dict[int, tuple[int, int]],
    step_types: list[StepTypeComparison],
    shapes: dict[Key, int],
) -> Comparison:
    """The comparison from what a store read: each version's sampled runs (``sample``, newest first),
    its (finished, running) runs in the window, the per-step-type comparison and the run shapes' counts
    by (``grp``, shape text). The one place a ``Comparison`` is built, whatever the store."""
    sides = {gv: _side(version, sample[gv], *in_window.get(gv, (0, 0))) for gv, version in versions.items()}
    run_mw = _rank_sums(sample, lambda r: r.duration_ms)
    steps_mw = _rank_sums(sample, lambda r: r.step_count)
    a, b = sides[BASE], sides[CANDIDATE]

    def rate(x_a: int, n_a: int, x_b: int, n_b: int) -> Delta:
        return Delta.of(ratio(x_a, n_a), ratio(x_b, n_b), two_proportion_z(x_a, n_a, x_b, n_b))

    succ, fail = RunStatus.SUCCESS.value, RunStatus.FAILURE.value
    result = Comparison(
        agent_id=agent_id, environment=environment, since=since, until=until,
        alpha=ALPHA, min_sample=MIN_SAMPLE, min_expected=MIN_EXPECTED, base=a, candidate=b,
        success_rate=rate(a.status_counts[succ], a.runs, b.status_counts[succ], b.runs),
        failure_rate=rate(a.status_counts[fail], a.runs, b.status_counts[fail], b.runs),
        run_latency_ms=PercentileDelta.of(a.run_latency_ms, b.run_latency_ms, mann_whitney_u(run_mw)),
        steps_per_run=Delta.of(a.steps_per_run, b.steps_per_run, mann_whitney_u(steps_mw)),
        retry_rate=rate(a.retry_steps, a.steps, b.retry_steps, b.steps),
        run_retry_rate=rate(a.runs_with_retries, a.runs, b.runs_with_retries, b.runs),
        failure_mix=_failure_mix(sample, a.runs, b.runs),
        step_types=step_types,
        shapes=_shape_rows(shapes, {BASE: a.runs, CANDIDATE: b.runs}),
        significant=[],
    )
    result.significant.extend(_significant(result))
    return result


class SampleRun(NamedTuple):
    run_id: str
    status: str
    duration_ms: float | None
    step_count: int
    retry_count: int
    failure_type: str | None
    failure_code: str | None


SAMPLE_COLUMNS = (
    runs.c.run_id, runs.c.status, runs.c.duration_ms, runs.c.step_count, runs.c.retry_count,
    runs.c.failure_type, runs.c.failure_code,
)


def _in_window(
    conn: sa.Connection, window: list[sa.ColumnElement[bool]], versions: dict[int, str]
) -> dict[int, tuple[int, int]]:
    """(finished, running) runs of each version in the window.

    Counted as all runs minus the running ones: all runs is an index-only count on (agent_id,
    agent_version, started_at), where counting by status would read every run's row; running runs
    are few, and the (status, started_at) index finds them.
    """
    group = {version: gv for gv, version in versions.items()}
    stmt = (
        sa.select(runs.c.agent_version, sa.func.count())
        .where(*window, runs.c.agent_version.in_(list(group)))
        .group_by(runs.c.agent_version)
    )
    total = {group[v]: int(n) for v, n in conn.execute(stmt)}
    running = {group[v]: int(n) for v, n in conn.execute(stmt.where(runs.c.status == RunStatus.RUNNING.value))}
    return {gv: (n - running.get(gv, 0), running.get(gv, 0)) for gv, n in total.items()}


def _side(version: str, sample: list[SampleRun], finished_in_window: int, running: int) -> VersionSide:
    counts = {s.value: sum(1 for r in sample if r.status == s.value) for s in RunStatus}
    counts[RunStatus.RUNNING.value] = running
    n = sum(c for s, c in counts.items() if s != RunStatus.RUNNING.value)
    durations = sorted(r.duration_ms for r in sample if r.duration_ms is not None)
    steps_n = sum(r.step_count for r in sample)
    retries = sum(r.retry_count for r in sample)
    runs_retried = sum(1 for r in sample if r.retry_count > 0)
    return VersionSide(
        version=version, runs=n, finished_runs_in_window=finished_in_window, sampled=finished_in_window > n,
        running_runs=running, status_counts=counts,
        success_rate=ratio(counts[RunStatus.SUCCESS.value], n),
        failure_rate=ratio(counts[RunStatus.FAILURE.value], n),
        run_latency_ms=Percentiles.of([percentile_cont(durations, q) for q in QUANTILES]),
        steps=steps_n, steps_per_run=ratio(steps_n, n),
        retry_steps=retries, retry_rate=ratio(retries, steps_n), runs_with_retries=runs_retried,
        run_retry_rate=ratio(runs_retried, n),
    )


def _rank_sums(sample: dict[int, list[SampleRun]], value: Callable[[SampleRun], float | None]) -> RankSums:
    a, b = ([v for r in sample.get(gv, []) if (v := value(r)) is not None] for gv in (BASE, CANDIDATE))
    return rank_sums(a, b)


def _failure_mix(sample: dict[int, list[SampleRun]], n_a: int, n_b: int) -> list[FailureMixRow]:
    counts: dict[tuple[str, str], list[int]] = {}
    for gv, rows in sample.items():
        for r in rows:
            if r.failure_type is not None:
                counts.setdefault((r.failure_type, r.failure_code or ""), [0, 0])[gv] += 1
    rows_out = [
        FailureMixRow(t, c, x_a, x_b, Delta.of(ratio(x_a, n_a), ratio(x_b, n_b), two_proportion_z(x_a, n_a, x_b, n_b)))
        for (t, c), (x_a, x_b) in counts.items()
    ]
    rows_out.sort(key=lambda r: (-(r.base_count + r.candidate_count), r.failure_type, r.failure_code))
    return rows_out


def _steps(
    conn: sa.Connection, where: list[sa.ColumnElement[bool]], grp: sa.ColumnElement[Any]
) -> tuple[list[StepTypeComparison], dict[Key, int]]:
    """Per step type numbers and run shapes, from one read of the compared runs' steps.

    One statement: the steps are read once into a CTE (PostgreSQL materialises a CTE used twice),
    then aggregated two ways and returned as one UNION ALL, rows told apart by ``kind``.
    """
    # The step type as its index in StepType (ingest accepts no other value): the window and the
    # grouping then sort small integers, not text (~40 % of the per-type aggregation's time).
    code = sa.case({t.value: i for i, t in enumerate(StepType)}, value=steps.c.step_type, else_=len(StepType))
    counted = sa.and_(steps.c.attempt == 1, steps.c.retry_of_seq.is_(None), steps.c.parent_seq.is_(None))
    read = sa.select(
        grp.label("grp"), code.label("code"), steps.c.step_type, steps.c.latency_ms, steps.c.status,
        bytewise(conn, steps.c.run_id).label("run_id"), steps.c.seq, counted.label("counted"),
    ).where(*where).cte("compared_steps")
    src = sa.select(read.c.grp, read.c.code.label("k0"), read.c.step_type, read.c.latency_ms.label("v"),
                    read.c.status).subquery()
    rk = ranked(src)
    postgres = is_postgres(conn)
    per_type = sa.select(
        sa.literal(0).label("kind"), rk.c.grp, sa.func.min(rk.c.step_type).label("label"), sa.func.count().label("n"),
        count_if(rk.c.status == StepStatus.ERROR.value).label("errors"),
        *[c.label(f"rs{i}") for i, c in enumerate(rank_sum_parts(rk))],
        *([percentiles_aggregate(rk.c.v).label("ps")] if postgres else []),
    ).group_by(rk.c.k0, rk.c.grp)  # k0 first: the rows come out of the window sorted by step type already
    shape_src = sa.select(read.c.grp.label("k0"), read.c.run_id, read.c.seq, read.c.step_type).where(
        read.c.counted
    ).subquery()
    shape_rows = run_shapes_select(conn, shape_src).subquery()
    pad: list[sa.ColumnElement[Any]] = [sa.null(), sa.null(), sa.null(), sa.null()]
    if postgres:
        pad.append(sa.cast(sa.null(), postgresql.ARRAY(sa.Float())))
    shapes_part = sa.select(sa.literal(1), *shape_rows.c, *pad)
    type_rows, shapes = [], {}
    for row in conn.execute(sa.union_all(per_type, shapes_part)):
        if row[0] == 0:
            type_rows.append(row[1:])
        else:
            shapes[(int(row[1]), row[2])] = int(row[3])
    pcts: dict[Key, Percentiles]
    if postgres:
        pcts = {(int(r[0]), r[1]): Percentiles.of(r[-1]) for r in type_rows if r[-1] is not None}
    else:
        latencies = sa.select(grp.label("k0"), steps.c.step_type.label("k1"), steps.c.latency_ms.label("v"))
        pcts = {(int(k[0]), k[1]): p for k, p in grouped_percentiles(conn, latencies.where(*where).subquery()).items()}
    counts: dict[str, list[int]] = {}
    parts: dict[Key, tuple[Any, ...]] = {}
    for r in type_rows:
        gv, step_type, n, errors = int(r[0]), r[1], int(r[2]), int(r[3])
        c = counts.setdefault(step_type, [0, 0, 0, 0])
        c[gv] += n
        c[2 + gv] += errors
        parts[(gv, step_type)] = tuple(r[4:7])
    sums = {t: combine_rank_sums(parts.get((BASE, t)), parts.get((CANDIDATE, t))) for t in counts}
    return step_type_comparisons(counts, sums, pcts), shapes


def step_type_comparisons(counts: dict[str, list[int]], sums: dict[str, RankSums],
                          pcts: dict[Key, Percentiles]) -> list[StepTypeComparison]:
    """Per step type: ``counts`` (base steps, candidate steps, base errors, candidate errors), the
    latencies' rank sums and the percentiles by (grp, step type), as compared rows, busiest first."""
    out = []
    for step_type, (n_a, n_b, e_a, e_b) in counts.items():
        latency = PercentileDelta.of(
            pcts.get((BASE, step_type), Percentiles()), pcts.get((CANDIDATE, step_type), Percentiles()),
            mann_whitney_u(sums[step_type]),
        )
        errors_delta = Delta.of(ratio(e_a, n_a), ratio(e_b, n_b), two_proportion_z(e_a, n_a, e_b, n_b))
        out.append(StepTypeComparison(step_type, n_a, n_b, latency, errors_delta))
    out.sort(key=lambda s: (-(s.base_count + s.candidate_count), s.step_type))
    return out


def _shape_rows(shapes: dict[Key, int], samples: dict[int, int]) -> list[ShapeRow]:
    counts: dict[tuple[str, ...], list[int]] = {}
    for (gv, text), n in shapes.items():
        parts = text.split(SHAPE_SEPARATOR) if text else []
        if len(parts) > MAX_SHAPE_LENGTH:
            parts = [*parts[:MAX_SHAPE_LENGTH], ELLIPSIS]
        counts.setdefault(tuple(parts), [0, 0])[int(gv)] += n
    for gv, n in samples.items():
        # Runs without a single counted step have the empty shape.
        empty = n - sum(c[gv] for c in counts.values())
        if empty > 0:
            counts.setdefault((), [0, 0])[gv] += empty
    n_a, n_b = samples.get(BASE, 0), samples.get(CANDIDATE, 0)
    top_a = sorted(counts, key=lambda s: (-counts[s][BASE], s))[:TOP_SHAPES]
    top_b = sorted(counts, key=lambda s: (-counts[s][CANDIDATE], s))[:TOP_SHAPES]
    chosen = sorted(set(top_a) | set(top_b), key=lambda s: (-(counts[s][0] + counts[s][1]), s))
    return [
        ShapeRow(
            list(s), counts[s][0], counts[s][1],
            Delta.of(ratio(counts[s][0], n_a), ratio(counts[s][1], n_b),
                     two_proportion_z(counts[s][0], n_a, counts[s][1], n_b)),
        )
        for s in chosen
    ]


def _significant(c: Comparison) -> list[str]:
    """Names of the metrics whose difference is significant, for a one-line summary."""
    flagged = []
    for name, test in (
        ("success_rate", c.success_rate.test),
        ("failure_rate", c.failure_rate.test),
        ("run_latency_ms", c.run_latency_ms.test),
        ("steps_per_run", c.steps_per_run.test),
        ("retry_rate", c.retry_rate.test),
        ("run_retry_rate", c.run_retry_rate.test),
    ):
        if test is not None and test.verdict == SIGNIFICANT:
            flagged.append(name)
    for f in c.failure_mix:
        if f.rate.test is not None and f.rate.test.verdict == SIGNIFICANT:
            flagged.append(f"failure_mix.{f.failure_type}.{f.failure_code}")
    for s in c.step_types:
        if s.latency_ms.test.verdict == SIGNIFICANT:
            flagged.append(f"step_types.{s.step_type}.latency_ms")
        if s.error_rate.test is not None and s.error_rate.test.verdict == SIGNIFICANT:
            flagged.append(f"step_types.{s.step_type}.error_rate")
    for sh in c.shapes:
        if sh.share.test is not None and sh.share.test.verdict == SIGNIFICANT:
            flagged.append("shapes." + (" > ".join(sh.shape) or "(no steps)"))
    return flagged
