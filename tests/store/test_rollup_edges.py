"""The raw parts of rollup stats on SQLite and PostgreSQL: a window's partial edge hours aggregated from the
raw tables give the same numbers whichever way they are computed (latencies bucketed in Python from
arrays, or by ``width_bucket`` in PostgreSQL; an edge read directly, or as its hour's rollup minus the
rest of the hour), and stats over a mid-hour window equal the exact path's (counts exactly, percentiles
within 1 %)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store import analytics_rollup, rollup
from agenttracer.store.analytics_sql import time_bucket
from agenttracer.store.histogram import Histogram
from agenttracer.store.rollup import Aggregates, aggregate_raw
from agenttracer.store.tables import runs, steps
from tests.store.test_rollup import START, load

# Eight and a half hours of runs, both edges mid-hour.
EDGE_LO = START + timedelta(days=1, hours=4, minutes=41)
EDGE_HI = START + timedelta(days=1, hours=13, minutes=12)


@pytest.fixture(autouse=True)
def _always_rollup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analytics_rollup, "EXACT_MAX_RUNS", 0)


def _raw(conn: sa.Connection) -> Aggregates:
    where = [runs.c.started_at >= EDGE_LO, runs.c.started_at < EDGE_HI]
    return aggregate_raw(conn, where, [time_bucket(conn, runs.c.started_at, "hour")], [], time_keys=(True,))


def _counters(agg: Any) -> list[float]:
    # Sums of latencies may differ in the last bit with the order they were added in.
    return [round(getattr(agg, name), 6) for name in agg.COUNTERS]


def _flat(agg: Aggregates) -> dict[str, Any]:
    """Every number of an Aggregates, histograms in their stored form."""
    return {
        "runs": {k: (_counters(a), a.last_started_at, a.hist.to_doc()) for k, a in agg.runs.items() if a.runs},
        "failures": {k: n for k, n in agg.failures.items() if n},
        "steps": {k: (_counters(a), a.hist.to_doc()) for k, a in agg.steps.items() if a.steps},
    }


def test_raw_histograms_equal_python_bisect_of_every_value_whichever_side_buckets(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(engine, 300)
    with engine.connect() as conn:
        arrays = _raw(conn)
        monkeypatch.setattr(rollup, "STEP_ARRAY_MAX", -1)  # PostgreSQL: grouped by width_bucket instead
        grouped = _raw(conn)
        in_window = sa.and_(runs.c.started_at >= EDGE_LO, runs.c.started_at < EDGE_HI)
        latencies = conn.execute(
            sa.select(steps.c.step_type, steps.c.name, steps.c.latency_ms)
            .select_from(steps.join(runs, steps.c.run_id == runs.c.run_id)).where(in_window)
        ).all()
        durations = conn.execute(sa.select(runs.c.duration_ms).where(
            in_window, runs.c.status != "running", runs.c.duration_ms.is_not(None))).scalars().all()
    assert _flat(arrays) == _flat(grouped)
    assert sum(a.steps for a in arrays.steps.values()) == len(latencies) > 100
    expected: dict[tuple[str, str], Histogram] = {}
    for step_type, name, latency in latencies:
        expected.setdefault((step_type, name), Histogram()).add_value(latency)
    assert {k: h.to_doc() for k, h in expected.items()} == {k: a.hist.to_doc() for k, a in arrays.steps.items()}
    run_hist = Histogram()
    for agg in arrays.runs.values():
        run_hist.add(agg.hist)
    expected_runs = Histogram()
    expected_runs.add_values(durations)
    assert run_hist.to_doc() == expected_runs.to_doc() and run_hist.total() == len(durations) > 20
    assert sum(arrays.failures.values()) > 0
