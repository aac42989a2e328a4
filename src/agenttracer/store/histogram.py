"""Mergeable latency histograms: the percentile part of the rollups (``store/sql/rollup/build.py``).

A latency lands in one of ``BUCKETS`` log-spaced buckets whose lower bounds are ``BOUNDS``
(``LOWEST_MS * RATIO**i``): bucket ``b`` holds values in ``[BOUNDS[b-1], BOUNDS[b])``; bucket 0
holds everything below ``LOWEST_MS`` (0 and sub-10-µs latencies), the last bucket everything from
``BOUNDS[-1]`` (~28 hours) up. The bucket of a value is defined as ``bisect_right(BOUNDS, value)``,
which is exactly what PostgreSQL's ``width_bucket(value, BOUNDS)`` returns for the same float8
array (both count the bounds <= value, comparing the same doubles), so PostgreSQL can bucket
millions of rows without sending them to Python, while small raw parts (the edges of a stats window)
and SQLite send their values and get the same bucket for the same value from ``add_values``:
identical histograms, identical percentiles, on both databases.

Percentiles follow ``percentile_cont`` (position ``q * (n - 1)``, linear interpolation between the two
order statistics around it) with each order statistic replaced by its bucket's representative value,
the geometric middle ``BOUNDS[b-1] * sqrt(RATIO)``. Error bound: a value and its representative differ
by less than a factor ``sqrt(RATIO)`` (< 1 % relative for RATIO 1.02), and interpolating between two
such values keeps that bound, so every reported percentile is within 1 % of the exact one (values
under 0.01 ms read as 0; values from ~28 h up read as ~28 h).

RATIO 1.02 was chosen over coarser ratios (1.05: 2.5 %) because a dashboard shows latencies with
three significant digits and 1 % keeps them honest; the cost is ~120-200 non-empty buckets for a
typical step's latency spread, which keeps a histogram a few hundred bytes and a merge a slice add.

Stored form (a JSON array of integers): ``[offset, c0, c1, ...]``, the counts of buckets ``offset``,
``offset + 1``, ... with leading and trailing empty buckets trimmed; ``[]`` for an empty histogram.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate, repeat

from agenttracer.store.stats_math import QUANTILES, interpolate, quantile_positions

RATIO = 1.02
LOWEST_MS = 0.01
HIGHEST_MS = 1e8  # ~28 hours
BOUNDS: tuple[float, ...] = tuple(
    LOWEST_MS * RATIO**i for i in range(math.ceil(math.log(HIGHEST_MS / LOWEST_MS) / math.log(RATIO)) + 1)
)
BUCKETS = len(BOUNDS) + 1
RELATIVE_ERROR = math.sqrt(RATIO) - 1.0  # the bound on a reported percentile's relative error

_HALF_STEP = math.sqrt(RATIO)
_REPRESENTATIVE: tuple[float, ...] = (
    0.0,
    *(BOUNDS[b - 1] * _HALF_STEP for b in range(1, len(BOUNDS))),
    BOUNDS[-1],
)


def bucket_of(value: float) -> int:
    """The bucket of a latency in milliseconds (PostgreSQL: ``width_bucket(value, BOUNDS)``)."""
    return bisect.bisect_right(BOUNDS, value)


def representative(bucket: int) -> float:
    """The value a bucket stands for in percentiles."""
    return _REPRESENTATIVE[bucket]


class Histogram:
    """Counts per bucket, dense over all buckets (merging is a C-level slice add).

    ``lo`` / ``hi`` bound the non-empty buckets, so merges and the stored form touch only that range;
    the dense list is allocated on the first count.
    """

    __slots__ = ("counts", "hi", "lo")

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.lo = BUCKETS
        self.hi = 0

    def _range(self, lo: int, hi: int) -> None:
        if not self.counts:
            self.counts = [0] * BUCKETS
        if lo < self.lo:
            self.lo = lo
        if hi > self.hi:
            self.hi = hi

    def add_value(self, value: float) -> None:
        self.add_bucket(bucket_of(value), 1)

    def add_values(self, values: Iterable[float]) -> None:
        """Count many values: bucketed by ``bucket_of`` (C-level bisect), then added bucket by bucket."""
        for bucket, count in Counter(map(bisect.bisect_right, repeat(BOUNDS), values)).items():
            self.add_bucket(bucket, count)

    def add_bucket(self, bucket: int, count: int) -> None:
        if count:
            self._range(bucket, bucket + 1)
            self.counts[bucket] += count

    def add_counts(self, counts: Mapping[int, int]) -> None:
        """Add counts per bucket (bucket -> count), e.g. a ClickHouse rollup's merged map: one range update
        over its non-empty buckets."""
        filled = [bucket for bucket, count in counts.items() if count]
        if not filled:
            return
        self._range(min(filled), max(filled) + 1)
        dense = self.counts
        for bucket in filled:
            dense[bucket] += counts[bucket]

    def add_doc(self, doc: Sequence[int]) -> None:
        """Add a stored histogram (``[offset, c0, c1, ...]``)."""
        if len(doc) < 2:
            return
        offset, end = doc[0], doc[0] + len(doc) - 1
        self._range(offset, end)
        self.counts[offset:end] = map(operator.add, self.counts[offset:end], doc[1:])

    def add(self, other: Histogram) -> None:
        lo, hi = other.lo, other.hi
        if lo >= hi:
            return
        self._range(lo, hi)
        self.counts[lo:hi] = map(operator.add, self.counts[lo:hi], other.counts[lo:hi])

    def subtract(self, other: Histogram) -> bool:
        """Take away counts added before; False, leaving this changed, when a bucket would go negative."""
        lo, hi = other.lo, other.hi
        if lo >= hi:
            return True
        if lo < self.lo or hi > self.hi:
            return False
        counts = self.counts
        counts[lo:hi] = map(operator.sub, counts[lo:hi], other.counts[lo:hi])
        if min(counts[lo:hi]) < 0:
            return False
        while self.lo < self.hi and not counts[self.lo]:
            self.lo += 1
        while self.hi > self.lo and not counts[self.hi - 1]:
            self.hi -= 1
        if self.lo >= self.hi:
            self.lo, self.hi = BUCKETS, 0
        return True

    def total(self) -> int:
        return sum(self.counts[self.lo:self.hi])

    def to_doc(self) -> list[int]:
        """The stored form: the non-empty range only."""
        if self.lo >= self.hi:
            return []
        return [self.lo, *self.counts[self.lo:self.hi]]

    def percentiles(self, quantiles: Iterable[float] = QUANTILES) -> list[float | None]:
        """``percentile_cont``-style percentiles of the histogram (None when it is empty)."""
        if self.lo >= self.hi:
            return [None for _ in quantiles]
        cumulative = list(accumulate(self.counts[self.lo:self.hi]))
        n = cumulative[-1]
        out: list[float | None] = []
        for q in quantiles:
            first, second, fraction = quantile_positions(q, n)
            # The k-th value (0-based) lies in the first bucket whose cumulative count exceeds k.
            low = _REPRESENTATIVE[self.lo + bisect.bisect_right(cumulative, first)]
            high = _REPRESENTATIVE[self.lo + bisect.bisect_right(cumulative, second)]
            out.append(interpolate(low, high, fraction))
        return out
