"""The one place a ``Comparison`` (``GET /v1/compare``) is built, whatever the store.

A store's compare reader samples each version's newest finished runs (``SampleRun`` rows, at most
COMPARE_SAMPLE_RUNS per version), counts each version's (finished, running) runs in the window, compares
the sampled runs' steps per step type (``step_type_comparisons``) and counts their run shapes; ``assemble``
computes every run-level number, delta and significance verdict from those. The definitions (shapes,
what counts, the tests used) are stated in ``store/sql/read/compare.py``'s docstring.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from agenttracer.model import RunStatus
from agenttracer.store.compare_result import (
    Comparison,
    Delta,
    FailureMixRow,
    PercentileDelta,
    ShapeRow,
    StepTypeComparison,
    VersionSide,
)
from agenttracer.store.results import Percentiles
from agenttracer.store.stats_math import (
    ALPHA,
    MIN_EXPECTED,
    MIN_SAMPLE,
    QUANTILES,
    SIGNIFICANT,
    Key,
    RankSums,
    mann_whitney_u,
    percentile_cont,
    rank_sums,
    ratio,
    two_proportion_z,
)

SHAPE_SEPARATOR = ">"
COMPARE_SAMPLE_RUNS = 2_000
TOP_SHAPES = 10
MAX_SHAPE_LENGTH = 30  # longer shapes are cut here and end with "…"
ELLIPSIS = "…"
BASE, CANDIDATE = 0, 1


class SampleRun(NamedTuple):
    run_id: str
    status: str
    duration_ms: float | None
    step_count: int
    retry_count: int
    failure_type: str | None
    failure_code: str | None


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


def _side(version: str, sample: list[SampleRun], finished_in_window: int, running: int) -> VersionSide:
    seen = Counter(r.status for r in sample)
    counts = {s.value: seen[s.value] for s in RunStatus}
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
