"""The statistics in store/stats_math.py, cross-checked against numpy/scipy and against worked examples.

scipy is a dev-only dependency used here to check our standard-library implementation; the product
never imports it.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats

from agenttracer.store.stats_math import (
    ALPHA,
    INSUFFICIENT,
    MIN_SAMPLE,
    NOT_SIGNIFICANT,
    QUANTILES,
    SIGNIFICANT,
    RankSums,
    mann_whitney_u,
    percentile_cont,
    rank_sums,
    two_proportion_z,
)


@pytest.mark.parametrize(
    "values",
    [[7.0], [1.0, 2.0], [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], [0.1 * i for i in range(1, 1001)], [2.5] * 9],
)
def test_percentile_cont_is_linear_interpolation_between_closest_ranks(values: list[float]) -> None:
    ordered = sorted(values)
    ours = [percentile_cont(ordered, q) for q in QUANTILES]
    # numpy's default method ("linear") is the same definition as PostgreSQL's percentile_cont.
    expected = np.percentile(ordered, [q * 100 for q in QUANTILES])
    assert ours == pytest.approx(list(expected), rel=1e-12)


def test_percentile_of_worked_example() -> None:
    # 11 sorted values; p95 sits at position 0.95 * 10 = 9.5, halfway between 6 and 9.
    values = sorted([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5])
    assert percentile_cont(values, 0.5) == 4
    assert percentile_cont(values, 0.95) == pytest.approx(7.5)
    assert percentile_cont([], 0.5) is None


def _samples(seed: int) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    # Rounded to whole milliseconds so that ties are common, as with real latencies.
    a = [float(round(rng.lognormvariate(4.6, 0.3))) for _ in range(rng.randint(20, 90))]
    b = [float(round(rng.lognormvariate(4.6 + rng.choice([0.0, 0.1, 0.4]), 0.3))) for _ in range(rng.randint(20, 90))]
    return a, b


@pytest.mark.parametrize("seed", range(8))
def test_mann_whitney_matches_scipy_asymptotic_with_ties(seed: int) -> None:
    a, b = _samples(seed)
    ours = mann_whitney_u(rank_sums(a, b))
    ref = stats.mannwhitneyu(b, a, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)
    assert ours.verdict == (SIGNIFICANT if ref.pvalue < ALPHA else NOT_SIGNIFICANT)


def test_rank_sums_average_tied_ranks() -> None:
    # Pooled sorted: 1(a) 2(a) 2(b) 3(b): ranks 1, 2.5, 2.5, 4 -> group a sums to 3.5; one tie of size 2.
    assert rank_sums([1.0, 2.0], [2.0, 3.0]) == RankSums(2, 2, 3.5, 6.0)


def test_mann_whitney_sign_says_which_version_is_slower() -> None:
    base = [float(x) for x in range(100, 140)]
    slower = [2 * x for x in base]
    result = mann_whitney_u(rank_sums(base, slower))
    assert result.verdict == SIGNIFICANT
    assert result.statistic is not None and result.statistic > 0
    faster = mann_whitney_u(rank_sums(slower, base))
    assert faster.statistic is not None and faster.statistic < 0


def test_mann_whitney_all_values_equal_is_not_significant() -> None:
    result = mann_whitney_u(rank_sums([5.0] * 30, [5.0] * 30))
    assert (result.verdict, result.p_value) == (NOT_SIGNIFICANT, 1.0)


def test_mann_whitney_small_samples_cannot_tell() -> None:
    base = [float(x) for x in range(MIN_SAMPLE - 1)]
    result = mann_whitney_u(rank_sums(base, [x * 10 for x in base]))
    assert (result.verdict, result.p_value, result.statistic) == (INSUFFICIENT, None, None)


@pytest.mark.parametrize(("x_a", "n_a", "x_b", "n_b"), [(10, 100, 30, 100), (45, 300, 52, 280), (200, 1000, 180, 400)])
def test_two_proportion_z_matches_chi_square_without_correction(x_a: int, n_a: int, x_b: int, n_b: int) -> None:
    ours = two_proportion_z(x_a, n_a, x_b, n_b)
    chi2, p, _dof, _exp = stats.chi2_contingency([[x_a, n_a - x_a], [x_b, n_b - x_b]], correction=False)
    assert ours.p_value == pytest.approx(p, rel=1e-9)
    assert ours.statistic is not None
    assert ours.statistic**2 == pytest.approx(chi2, rel=1e-9)
    assert math.copysign(1, ours.statistic) == math.copysign(1, x_b / n_b - x_a / n_a)


def test_two_proportion_worked_example() -> None:
    # 5% vs 15% of 100 runs: pooled 0.1, se = sqrt(0.1 * 0.9 * 0.02) = 0.04243, z = 2.357, p = 0.0184.
    result = two_proportion_z(5, 100, 15, 100)
    assert result.statistic == pytest.approx(2.3570226, rel=1e-6)
    assert result.p_value == pytest.approx(0.018422, rel=1e-4)
    assert result.verdict == SIGNIFICANT
    assert two_proportion_z(10, 100, 12, 100).verdict == NOT_SIGNIFICANT


def test_two_proportion_says_too_small_instead_of_guessing() -> None:
    # 5 runs per version: even 0/5 vs 5/5 is below the minimum sample.
    assert two_proportion_z(0, 5, 5, 5).verdict == INSUFFICIENT
    # Enough runs, but too few expected events for the normal approximation (pooled 2 in 1000).
    assert two_proportion_z(0, 500, 2, 500).verdict == INSUFFICIENT
    # Identical rates are simply no evidence of a difference, at any sample size.
    same = two_proportion_z(0, 500, 0, 500)
    assert (same.verdict, same.p_value) == (NOT_SIGNIFICANT, 1.0)
