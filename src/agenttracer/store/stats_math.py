"""The statistics behind analytics: percentiles and the two significance tests, in pure Python.

Standard library only (``math.erfc`` gives the normal tail), so the numbers can be checked by hand
and by scipy in the tests. The database does the heavy lifting (sorting, ranking, counting); these
functions turn its aggregates into answers.

Conventions (documented for users in the API field descriptions):

* Percentiles use the continuous definition of PostgreSQL's ``percentile_cont``: the value at
  position ``q * (n - 1)`` of the sorted sample, interpolated linearly between its neighbours.
* Both tests are two-sided at ``ALPHA``. A test needs ``MIN_SAMPLE`` observations in each group;
  the two-proportion test also needs ``MIN_EXPECTED`` expected events and non-events in each group
  under the pooled rate, because below that the normal approximation is not trustworthy. Otherwise
  the verdict is ``insufficient_data`` ("sample too small to tell") rather than a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ALPHA = 0.05
MIN_SAMPLE = 20
MIN_EXPECTED = 5.0
QUANTILES = (0.5, 0.95, 0.99)
# A grouping key of grouped aggregates (percentiles, rank sums): the group's values, in order.
Key = tuple[Any, ...]

def ratio(part: float, whole: float) -> float | None:
    """part / whole, or None when there is nothing to divide by (a rate of nothing is unknown, not 0)."""
    return part / whole if whole else None


SIGNIFICANT = "significant"
NOT_SIGNIFICANT = "not_significant"
INSUFFICIENT = "insufficient_data"

TWO_PROPORTION_Z = "two_proportion_z"
MANN_WHITNEY_U = "mann_whitney_u"


@dataclass(frozen=True)
class TestResult:
    """The outcome of a two-sided significance test between a base and a candidate sample."""

    test: str
    verdict: str
    p_value: float | None
    statistic: float | None
    alpha: float = ALPHA

    __test__ = False  # not a pytest class, despite the name


def interpolate(lower: float, upper: float, fraction: float) -> float:
    """Linear interpolation written exactly as PostgreSQL's ``float8_lerp``, so results match bit for bit."""
    return lower + (upper - lower) * fraction


def quantile_positions(q: float, n: int) -> tuple[int, int, float]:
    """0-based indexes of the two order statistics around quantile ``q`` and the fraction between them."""
    pos = q * (n - 1)
    first = math.floor(pos)
    second = math.ceil(pos)
    return first, second, pos - first


def percentile_cont(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``percentile_cont`` of an ascending sample; None for an empty one."""
    n = len(sorted_values)
    if n == 0:
        return None
    first, second, fraction = quantile_positions(q, n)
    return interpolate(sorted_values[first], sorted_values[second], fraction)


def _normal_two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def _verdict(p_value: float) -> str:
    return SIGNIFICANT if p_value < ALPHA else NOT_SIGNIFICANT


def two_proportion_z(events_a: int, n_a: int, events_b: int, n_b: int) -> TestResult:
    """Two-sided pooled z-test for a difference between the rates ``events_a/n_a`` and ``events_b/n_b``."""
    if n_a < MIN_SAMPLE or n_b < MIN_SAMPLE:
        return TestResult(TWO_PROPORTION_Z, INSUFFICIENT, None, None)
    pooled = (events_a + events_b) / (n_a + n_b)
    rate_a, rate_b = events_a / n_a, events_b / n_b
    if rate_a == rate_b:
        # Identical rates (including 0 vs 0) are no evidence of a difference at any sample size.
        return TestResult(TWO_PROPORTION_Z, NOT_SIGNIFICANT, 1.0, 0.0)
    smallest_expected = min(n * p for n in (n_a, n_b) for p in (pooled, 1.0 - pooled))
    if smallest_expected < MIN_EXPECTED:
        return TestResult(TWO_PROPORTION_Z, INSUFFICIENT, None, None)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    z = (rate_b - rate_a) / se
    p = _normal_two_sided_p(z)
    return TestResult(TWO_PROPORTION_Z, _verdict(p), p, z)


@dataclass(frozen=True)
class RankSums:
    """What the database returns for a Mann–Whitney test over two groups.

    ``rank_sum_a`` is the sum of the (tie-averaged) ranks of group A in the pooled sample and
    ``tie_term`` is Σ(t³ − t) over the groups of tied values (0 without ties).
    """

    n_a: int
    n_b: int
    rank_sum_a: float
    tie_term: float


def rank_sums(a: Sequence[float], b: Sequence[float]) -> RankSums:
    """Rank sums computed in Python; the database computes the same with window functions."""
    pooled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    rank_sum_a = 0.0
    tie_term = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        t = j - i + 1
        mean_rank = (i + 1 + j + 1) / 2.0
        rank_sum_a += mean_rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        tie_term += t**3 - t
        i = j + 1
    return RankSums(len(a), len(b), rank_sum_a, tie_term)


def combine_rank_sums(base: Sequence[Any] | None, candidate: Sequence[Any] | None) -> RankSums:
    """RankSums from what a database summed over each group of one key (base: group A, candidate: group
    B): (how many values, the sum of their ranks in the pooled sample, their tie term), or None for none."""
    n_a, sum_a, tt_a = base or (0, None, None)
    n_b, _, tt_b = candidate or (0, None, None)
    # Ranks are halves and tie terms integers: every sum is exact in a double, in any order.
    return RankSums(int(n_a), int(n_b), float(sum_a or 0.0), float(tt_a or 0.0) + float(tt_b or 0.0))


def mann_whitney_u(sums: RankSums) -> TestResult:
    """Two-sided Mann–Whitney U test, normal approximation with tie and continuity correction.

    The statistic reported is z for the candidate (group B) being larger: positive when B tends to
    be slower. Matches ``scipy.stats.mannwhitneyu(..., method="asymptotic")``.
    """
    n_a, n_b = sums.n_a, sums.n_b
    if n_a < MIN_SAMPLE or n_b < MIN_SAMPLE:
        return TestResult(MANN_WHITNEY_U, INSUFFICIENT, None, None)
    n = n_a + n_b
    u_a = sums.rank_sum_a - n_a * (n_a + 1) / 2.0
    u_b = n_a * n_b - u_a
    mean = n_a * n_b / 2.0
    variance = n_a * n_b / 12.0 * ((n + 1) - sums.tie_term / (n * (n - 1)))
    if variance <= 0:
        # Every value is the same: nothing to tell apart.
        return TestResult(MANN_WHITNEY_U, NOT_SIGNIFICANT, 1.0, 0.0)
    deviation = u_b - mean
    # Continuity correction: move half a unit towards the mean (never past it).
    corrected = max(abs(deviation) - 0.5, 0.0)
    z = math.copysign(corrected / math.sqrt(variance), deviation) if deviation else 0.0
    p = min(1.0, _normal_two_sided_p(z))
    return TestResult(MANN_WHITNEY_U, _verdict(p), p, z)
