"""Latency histograms: the bucket of a value is the same in Python and in PostgreSQL, and percentiles from a
histogram stay within the documented 1 % of the exact ones."""

from __future__ import annotations

import math
import random

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from agenttracer.store import histogram
from agenttracer.store.histogram import BOUNDS, RELATIVE_ERROR, Histogram, bucket_of
from agenttracer.store.stats_math import QUANTILES, percentile_cont


def test_the_error_bound_is_under_one_percent() -> None:
    assert histogram.RATIO == 1.02
    assert RELATIVE_ERROR < 0.01


def test_a_bucket_holds_the_values_between_its_bounds() -> None:
    assert bucket_of(0.0) == 0
    assert bucket_of(-5.0) == 0
    assert bucket_of(BOUNDS[0]) == 1
    assert bucket_of(math.nextafter(BOUNDS[10], 0)) == 10
    assert bucket_of(BOUNDS[10]) == 11
    assert bucket_of(1e12) == len(BOUNDS)


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_from_a_histogram_are_within_the_bound(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(math.log(300.0), 0.8) for _ in range(rng.choice((1, 2, 7, 500, 5000)))]
    h = Histogram()
    for v in values:
        h.add_value(v)
    exact = [percentile_cont(sorted(values), q) for q in QUANTILES]
    approx = h.percentiles()
    for e, a in zip(exact, approx, strict=True):
        assert e is not None and a is not None
        assert abs(a - e) <= RELATIVE_ERROR * e + 1e-9


def test_merging_stored_forms_equals_one_histogram_of_all_values() -> None:
    rng = random.Random(3)
    parts = [[rng.uniform(0.5, 5000.0) for _ in range(200)] for _ in range(4)]
    merged = Histogram()
    for part in parts:
        h = Histogram()
        for v in part:
            h.add_value(v)
        merged.add_doc(h.to_doc())
    whole = Histogram()
    for v in (v for part in parts for v in part):
        whole.add_value(v)
    assert merged.to_doc() == whole.to_doc()
    assert merged.percentiles() == whole.percentiles()
    assert Histogram().to_doc() == [] and Histogram().percentiles() == [None, None, None]



def test_adding_counts_per_bucket_equals_adding_their_values() -> None:
    rnd = random.Random(9)
    values = [rnd.lognormvariate(4, 1.5) for _ in range(2000)]
    want = Histogram()
    want.add_values(values[:1500])
    got = Histogram()
    got.add_values(values[:700])
    counts: dict[int, int] = {}
    for v in values[700:1500]:
        counts[bucket_of(v)] = counts.get(bucket_of(v), 0) + 1
    got.add_counts(counts)
    got.add_counts({})
    assert got.to_doc() == want.to_doc() and got.percentiles() == want.percentiles()


def test_subtracting_a_part_leaves_the_histogram_of_the_rest() -> None:
    rng = random.Random(4)
    part = [rng.uniform(0.5, 50.0) for _ in range(150)]
    rest = [rng.uniform(20.0, 5000.0) for _ in range(150)]
    whole, taken, expected = Histogram(), Histogram(), Histogram()
    whole.add_values(part + rest)
    taken.add_values(part)
    expected.add_values(rest)
    assert whole.subtract(taken) and whole.to_doc() == expected.to_doc()  # trimmed to the rest's range
    assert whole.percentiles() == expected.percentiles()
    assert whole.subtract(expected) and whole.to_doc() == [] and whole.percentiles() == [None, None, None]
    assert whole.subtract(Histogram())
    assert not whole.subtract(taken)  # not part of it: refused
    one = Histogram()
    one.add_value(10.0)
    two = Histogram()
    two.add_values([10.0, 10.0])
    assert not one.subtract(two)

@pytest.mark.parametrize("backend", ["postgresql"])  # width_bucket is PostgreSQL's; SQLite buckets in Python
def test_postgresql_width_bucket_agrees_with_python(engine: sa.Engine) -> None:
    """The refresher buckets in SQL on PostgreSQL and in Python on SQLite: both must agree exactly."""
    assert engine.dialect.name == "postgresql"
    rng = random.Random(7)
    values = [0.0, -1.0, 1e12, *BOUNDS[:50], *BOUNDS[-5:]]
    values += [math.nextafter(b, 0) for b in BOUNDS[::37]] + [math.nextafter(b, math.inf) for b in BOUNDS[::41]]
    values += [rng.lognormvariate(math.log(200.0), 2.0) for _ in range(2000)]
    bounds = sa.literal(list(BOUNDS), type_=postgresql.ARRAY(sa.Float()))
    rows = sa.values(sa.column("v", sa.Float()), name="vals").data([(v,) for v in values])
    with engine.connect() as conn:
        found = conn.execute(sa.select(rows.c.v, sa.func.width_bucket(rows.c.v, bounds))).all()
    assert sorted((v, bucket_of(v)) for v in values) == sorted((v, b) for v, b in found)
