"""The SQL store's latency histogram (``store/histogram.py``) in ClickHouse SQL: the same buckets for the same
doubles, so step rollups merge as a plain ``sumMap`` and their percentiles are read by the one definition.

``bucket_of(value)`` is ``bisect_right(BOUNDS, value)``: the number of bounds at or below the value. In SQL
the logarithm gives the candidate, and one comparison with each neighbouring bound (the same doubles,
written out exactly) corrects the rounding of the logarithm, so every value lands where Python puts it.
A step rollup keeps counts per bucket (``Map(UInt16, UInt64)``): merging ~6 steps' buckets per row is a
map add, where deserialising a DDSketch state per row cost more than reading the raw steps.
"""

from __future__ import annotations

from collections.abc import Mapping

from agenttracer.store.histogram import BOUNDS, LOWEST_MS, RATIO, Histogram
from agenttracer.store.results import Percentiles

# The bounds as a ClickHouse array literal (repr: the shortest text that reads back as the same double).
BOUNDS_SQL = f"[{', '.join(repr(b) for b in BOUNDS)}]"
_N = len(BOUNDS)


def with_bounds() -> str:
    """The WITH clause that names the bounds ``_bounds`` for ``bucket_sql`` (once per SELECT)."""
    return f"WITH {BOUNDS_SQL} AS _bounds"


def bucket_sql(value: str) -> str:
    """The histogram bucket of ``value`` (a Float64 expression) as UInt16, under ``with_bounds``."""
    guess = f"least(greatest(toInt64(floor(log({value} / {LOWEST_MS!r}) / log({RATIO!r}))) + 1, 1), {_N})"
    fixed = (f"if(_bounds[{guess}] > {value}, {guess} - 1, "
             f"if({guess} < {_N} AND _bounds[{guess} + 1] <= {value}, {guess} + 1, {guess}))")
    return f"toUInt16(multiIf({value} < {LOWEST_MS!r}, 0, {value} >= {BOUNDS[-1]!r}, {_N}, {fixed}))"


def counts_sql(value: str) -> str:
    """The aggregate: counts per bucket of ``value`` as a Map(UInt16, UInt64), under ``with_bounds``."""
    return f"sumMap(map({bucket_sql(value)}, toUInt64(1)))"


def percentiles(counts: Mapping[int, int]) -> Percentiles:
    """The percentiles of merged bucket counts, as the SQL store's rollups read them."""
    hist = Histogram()
    hist.add_counts({int(b): int(n) for b, n in counts.items()})
    return Percentiles.of(hist.percentiles()) if hist.total() else Percentiles()
