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
many runs it compared and how many finished in the window).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agenttracer.model import RunStatus, StepStatus
from agenttracer.store.analytics import ratio
from agenttracer.store.analytics_sql import (
    SHAPE_SEPARATOR,
    Key,
    Members,
    Percentiles,
    grouped_percentiles,
    grouped_rank_sums,
    is_postgres,
    percentiles_aggregate,
    run_shapes,
    tune,
)
from agenttracer.store.filters import RunFilters, run_conditions
from agenttracer.store.stats_math import (
    ALPHA,
    MIN_EXPECTED,
    MIN_SAMPLE,
    SIGNIFICANT,
    RankSums,
    TestResult,
    mann_whitney_u,
    two_proportion_z,
)
from agenttracer.store.tables import runs, steps

COMPARE_SAMPLE_RUNS = 2_000
TOP_SHAPES = 10
MAX_SHAPE_LENGTH = 30  # longer shapes are cut here and end with "…"
ELLIPSIS = "…"
BASE, CANDIDATE = 0, 1


@dataclass(frozen=True)
class Delta:
    """One scalar metric for both versions; ``delta`` = candidate − base, ``relative`` = delta / base."""

    base: float | None
    candidate: float | None
    delta: float | None
    relative: float | None
    test: TestResult | None

    @classmethod
    def of(cls, base: float | None, candidate: float | None, test: TestResult | None) -> Delta:
        delta = None if base is None or candidate is None else candidate - base
        relative = None if delta is None or not base else delta / base
        return cls(base, candidate, delta, relative, test)


@dataclass(frozen=True)
class PercentileDelta:
    base: Percentiles
    candidate: Percentiles
    delta: Percentiles
    test: TestResult

    @classmethod
    def of(cls, base: Percentiles, candidate: Percentiles, test: TestResult) -> PercentileDelta:
        def d(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else b - a

        delta = Percentiles(d(base.p50, candidate.p50), d(base.p95, candidate.p95), d(base.p99, candidate.p99))
        return cls(base, candidate, delta, test)


@dataclass(frozen=True)
class VersionSide:
    version: str
    runs: int
    finished_runs_in_window: int
    sampled: bool
    running_runs: int
    status_counts: dict[str, int]
    success_rate: float | None
    failure_rate: float | None
    run_latency_ms: Percentiles
    steps: int
    steps_per_run: float | None
    retry_steps: int
    retry_rate: float | None
    runs_with_retries: int
    run_retry_rate: float | None


@dataclass(frozen=True)
class FailureMixRow:
    failure_type: str
    failure_code: str
    base_count: int
    candidate_count: int
    rate: Delta


@dataclass(frozen=True)
class StepTypeComparison:
    step_type: str
    base_count: int
    candidate_count: int
    latency_ms: PercentileDelta
    error_rate: Delta


@dataclass(frozen=True)
class ShapeRow:
    shape: list[str]
    base_count: int
    candidate_count: int
    share: Delta


@dataclass(frozen=True)
class Comparison:
    agent_id: str
    environment: str | None
    since: datetime | None
    until: datetime | None
    alpha: float
    min_sample: int
    min_expected: float
    base: VersionSide
    candidate: VersionSide
    success_rate: Delta
    failure_rate: Delta
    run_latency_ms: PercentileDelta
    steps_per_run: Delta
    retry_rate: Delta
    run_retry_rate: Delta
    failure_mix: list[FailureMixRow]
    step_types: list[StepTypeComparison]
    shapes: list[ShapeRow]
    significant: list[str]


def _count_if(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)


def compare_versions(
    conn: sa.Connection,
    agent_id: str,
    base: str,
    candidate: str,
    environment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Comparison:
    """Both versions side by side with candidate − base deltas and significance verdicts."""
    if base == candidate:
        raise ValueError("candidate must differ from base")
    tune(conn)
    window = run_conditions(RunFilters(agent_id=agent_id, environment=environment, since=since, until=until))
    window.append(runs.c.agent_version.in_([base, candidate]))
    grp = sa.case((runs.c.agent_version == candidate, CANDIDATE), else_=BASE)
    versions = {BASE: base, CANDIDATE: candidate}

    g = grp.label("g")
    in_window = {
        int(row.g): (int(row.finished), int(row.running))
        for row in conn.execute(
            sa.select(
                g,
                _count_if(runs.c.status != RunStatus.RUNNING.value).label("finished"),
                _count_if(runs.c.status == RunStatus.RUNNING.value).label("running"),
            )
            .where(*window)
            .group_by(g)
        )
    }
    newest = [
        sa.select(runs.c.run_id)
        .where(*window, runs.c.status != RunStatus.RUNNING.value, runs.c.agent_version == version)
        .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        .limit(COMPARE_SAMPLE_RUNS)
        for version in (base, candidate)
    ]
    members = Members(conn, newest)
    compared = [members.on(runs.c.run_id)]
    # Step queries name the ids on steps.run_id as well, so the database looks them up by primary key.
    compared_steps = [*compared, members.on(steps.c.run_id)]

    sides_raw = _version_summaries(conn, compared, grp)
    run_pcts = grouped_percentiles(conn, _src(compared, grp, value=runs.c.duration_ms))
    run_mw = grouped_rank_sums(conn, _src(compared, value=runs.c.duration_ms, grp=grp)).get(())
    steps_mw = grouped_rank_sums(conn, _src(compared, value=runs.c.step_count, grp=grp)).get(())
    shapes = _shapes(conn, compared_steps, grp)

    sides = {}
    for gv, version in versions.items():
        raw = sides_raw.get(gv, {})
        counts = {s.value: int(raw.get(s.value, 0)) for s in RunStatus}
        finished_in_window, running = in_window.get(gv, (0, 0))
        counts[RunStatus.RUNNING.value] = running
        n = sum(c for s, c in counts.items() if s != RunStatus.RUNNING.value)
        steps_n, retries, runs_retried = int(raw.get("steps", 0)), int(raw.get("retries", 0)), int(raw.get("rr", 0))
        sides[gv] = VersionSide(
            version=version, runs=n, finished_runs_in_window=finished_in_window, sampled=finished_in_window > n,
            running_runs=running, status_counts=counts,
            success_rate=ratio(counts[RunStatus.SUCCESS.value], n),
            failure_rate=ratio(counts[RunStatus.FAILURE.value], n),
            run_latency_ms=run_pcts.get((gv,), Percentiles()), steps=steps_n, steps_per_run=ratio(steps_n, n),
            retry_steps=retries, retry_rate=ratio(retries, steps_n), runs_with_retries=runs_retried,
            run_retry_rate=ratio(runs_retried, n),
        )
    a, b = sides[BASE], sides[CANDIDATE]

    def rate(x_a: int, n_a: int, x_b: int, n_b: int) -> Delta:
        return Delta.of(ratio(x_a, n_a), ratio(x_b, n_b), two_proportion_z(x_a, n_a, x_b, n_b))

    succ, fail = RunStatus.SUCCESS.value, RunStatus.FAILURE.value
    result = Comparison(
        agent_id=agent_id, environment=environment, since=since, until=until,
        alpha=ALPHA, min_sample=MIN_SAMPLE, min_expected=MIN_EXPECTED, base=a, candidate=b,
        success_rate=rate(a.status_counts[succ], a.runs, b.status_counts[succ], b.runs),
        failure_rate=rate(a.status_counts[fail], a.runs, b.status_counts[fail], b.runs),
        run_latency_ms=PercentileDelta.of(a.run_latency_ms, b.run_latency_ms, _mw(run_mw)),
        steps_per_run=Delta.of(a.steps_per_run, b.steps_per_run, _mw(steps_mw)),
        retry_rate=rate(a.retry_steps, a.steps, b.retry_steps, b.steps),
        run_retry_rate=rate(a.runs_with_retries, a.runs, b.runs_with_retries, b.runs),
        failure_mix=_failure_mix(conn, compared, grp, a.runs, b.runs),
        step_types=_step_types(conn, compared_steps, grp),
        shapes=_shape_rows(shapes, {BASE: a.runs, CANDIDATE: b.runs}),
        significant=[],
    )
    result.significant.extend(_significant(result))
    return result


def _mw(sums: RankSums | None) -> TestResult:
    return mann_whitney_u(sums or RankSums(0, 0, 0.0, 0.0))


def _src(
    where: list[sa.ColumnElement[bool]],
    *keys: sa.ColumnElement[Any],
    value: sa.ColumnElement[Any],
    grp: sa.ColumnElement[Any] | None = None,
    join_steps: bool = False,
) -> sa.Subquery:
    cols: list[sa.ColumnElement[Any]] = [k.label(f"k{i}") for i, k in enumerate(keys)]
    if grp is not None:
        cols.append(grp.label("grp"))
    stmt = sa.select(*cols, value.label("v")).where(*where)
    if join_steps:
        stmt = stmt.select_from(steps.join(runs, steps.c.run_id == runs.c.run_id))
    return stmt.subquery()


def _version_summaries(
    conn: sa.Connection, compared: list[sa.ColumnElement[bool]], grp: sa.ColumnElement[Any]
) -> dict[int, dict[str, Any]]:
    g = grp.label("g")
    stmt = sa.select(
        g,
        *[_count_if(runs.c.status == s.value).label(s.value) for s in RunStatus],
        sa.func.coalesce(sa.func.sum(runs.c.step_count), 0).label("steps"),
        sa.func.coalesce(sa.func.sum(runs.c.retry_count), 0).label("retries"),
        _count_if(runs.c.retry_count > 0).label("rr"),
    ).where(*compared).group_by(g)
    return {int(row.g): dict(row._mapping) for row in conn.execute(stmt)}


def _failure_mix(
    conn: sa.Connection, finished: list[sa.ColumnElement[bool]], grp: sa.ColumnElement[Any], n_a: int, n_b: int
) -> list[FailureMixRow]:
    g = grp.label("g")
    stmt = (
        sa.select(g, runs.c.failure_type, runs.c.failure_code, sa.func.count())
        .where(*finished, runs.c.failure_type.is_not(None))
        .group_by(g, runs.c.failure_type, runs.c.failure_code)
    )
    counts: dict[tuple[str, str], list[int]] = {}
    for gv, ftype, fcode, n in conn.execute(stmt):
        counts.setdefault((ftype, fcode or ""), [0, 0])[int(gv)] += int(n)
    rows = [
        FailureMixRow(t, c, x_a, x_b, Delta.of(ratio(x_a, n_a), ratio(x_b, n_b), two_proportion_z(x_a, n_a, x_b, n_b)))
        for (t, c), (x_a, x_b) in counts.items()
    ]
    rows.sort(key=lambda r: (-(r.base_count + r.candidate_count), r.failure_type, r.failure_code))
    return rows


def _step_types(
    conn: sa.Connection, finished: list[sa.ColumnElement[bool]], grp: sa.ColumnElement[Any]
) -> list[StepTypeComparison]:
    joined = steps.join(runs, steps.c.run_id == runs.c.run_id)
    g = grp.label("g")
    counters = [sa.func.count(), _count_if(steps.c.status == StepStatus.ERROR.value)]
    pcts: dict[Key, Percentiles] = {}
    if is_postgres(conn):
        # Counts and percentiles in one pass over the compared steps.
        rows = conn.execute(
            sa.select(g, steps.c.step_type, *counters, percentiles_aggregate(steps.c.latency_ms))
            .select_from(joined)
            .where(*finished)
            .group_by(g, steps.c.step_type)
        ).all()
        pcts = {(int(r[0]), r[1]): Percentiles.of(r[-1]) for r in rows if r[-1] is not None}
        agg = [tuple(r[:-1]) for r in rows]
    else:
        agg = [
            tuple(r)
            for r in conn.execute(
                sa.select(g, steps.c.step_type, *counters)
                .select_from(joined)
                .where(*finished)
                .group_by(g, steps.c.step_type)
            )
        ]
        src = _src(finished, grp, steps.c.step_type, value=steps.c.latency_ms, join_steps=True)
        pcts = {(int(k[0]), k[1]): p for k, p in grouped_percentiles(conn, src).items()}
    counts: dict[str, list[int]] = {}
    for gv, step_type, n, errors in agg:
        c = counts.setdefault(step_type, [0, 0, 0, 0])
        c[int(gv)] += int(n)
        c[2 + int(gv)] += int(errors)
    mw = grouped_rank_sums(conn, _src(finished, steps.c.step_type, value=steps.c.latency_ms, grp=grp, join_steps=True))
    out = []
    for step_type, (n_a, n_b, e_a, e_b) in counts.items():
        latency = PercentileDelta.of(
            pcts.get((BASE, step_type), Percentiles()), pcts.get((CANDIDATE, step_type), Percentiles()),
            _mw(mw.get((step_type,))),
        )
        errors = Delta.of(ratio(e_a, n_a), ratio(e_b, n_b), two_proportion_z(e_a, n_a, e_b, n_b))
        out.append(StepTypeComparison(step_type, n_a, n_b, latency, errors))
    out.sort(key=lambda s: (-(s.base_count + s.candidate_count), s.step_type))
    return out


def _shapes(conn: sa.Connection, compared: list[sa.ColumnElement[bool]], grp: sa.ColumnElement[Any]) -> dict[Key, int]:
    """How many compared runs of each version have each shape (runs without counted steps are absent)."""
    counted = (
        sa.select(grp.label("k0"), steps.c.run_id, steps.c.seq, steps.c.step_type)
        .select_from(steps.join(runs, steps.c.run_id == runs.c.run_id))
        .where(
            *compared,
            steps.c.attempt == 1,
            steps.c.retry_of_seq.is_(None),
            steps.c.parent_seq.is_(None),
        )
        .subquery()
    )
    return run_shapes(conn, counted)


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
