"""The raw parts of rollup stats on SQLite and PostgreSQL: a window's partial edge hours aggregated from the
raw tables give the same numbers whichever way they are computed (latencies bucketed in Python from
arrays, or by ``width_bucket`` in PostgreSQL; an edge read directly, or as its hour's rollup minus the
rest of the hour), and stats over a mid-hour window equal the exact path's (counts exactly, percentiles
within 1 %)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.filters import RunFilters
from agenttracer.store.histogram import Histogram
from agenttracer.store.sql.expressions import time_bucket
from agenttracer.store.sql.read import stats_rollup
from agenttracer.store.sql.rollup import build
from agenttracer.store.sql.rollup import window as rollup_window
from agenttracer.store.sql.rollup.aggregates import Aggregates
from agenttracer.store.sql.rollup.build import aggregate_raw
from agenttracer.store.sql.rollup.refresh import refresh
from agenttracer.store.sql.schema.tables import rollup_dirty, runs, steps
from tests.store.test_rollup import NOW, START, assert_same, exact_stats, load, run_events, stats, write

# Eight and a half hours of runs, both edges mid-hour.
EDGE_LO = START + timedelta(days=1, hours=4, minutes=41)
EDGE_HI = START + timedelta(days=1, hours=13, minutes=12)


@pytest.fixture(autouse=True)
def _always_rollup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats_rollup, "EXACT_MAX_RUNS", 0)


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
        monkeypatch.setattr(build, "STEP_ARRAY_MAX", -1)  # PostgreSQL: grouped by width_bucket instead
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


def _spy_plans(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, list[Any]]]:
    """Record each plan's ``edges`` flag and the edge hours it chose."""
    seen: list[tuple[bool, list[Any]]] = []
    real = stats_rollup.plan

    def spy(*args: Any, **kwargs: Any) -> rollup_window.Window | None:
        window = real(*args, **kwargs)
        seen.append((kwargs.get("edges", False), window.edges if window is not None else []))
        return window

    monkeypatch.setattr(stats_rollup, "plan", spy)
    return seen


H1 = START + timedelta(days=1, hours=4)  # an edge hour at the start of the windows below
H2 = START + timedelta(days=2, hours=9)  # one at the end


@pytest.mark.parametrize(("since", "until", "edges"), [
    (H1 + timedelta(minutes=23), H2 + timedelta(minutes=10), [H1]),  # the start's rest is shorter
    (H1 + timedelta(minutes=41), H2 + timedelta(minutes=52), [H2]),  # the end's rest is shorter
    (H1 + timedelta(minutes=5), H2 + timedelta(minutes=31), [H1, H2]),  # both
    (H1 + timedelta(minutes=15), START + timedelta(days=2, hours=21, minutes=40), [H1, H2 + timedelta(hours=12)]),
    (H1 + timedelta(minutes=31), H2 + timedelta(minutes=29), []),  # the window's side is shorter: read directly
])
def test_mid_hour_windows_equal_the_exact_path(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, since: datetime, until: datetime, edges: list[datetime]
) -> None:
    load(engine, 400)
    refresh(engine, now=NOW)
    filters = RunFilters(since=since, until=until)
    exact = exact_stats(engine, filters, monkeypatch)
    seen = _spy_plans(monkeypatch)
    fast = stats(engine, filters)
    assert [hour for hour, _ in seen[0][1]] == edges and len(seen) == 1  # no fall-back to direct edges
    assert not fast.latency_exact
    assert_same(fast, exact)
    agent = RunFilters(since=since, until=until, agent_id="bot-a")
    assert_same(stats(engine, agent), exact_stats(engine, agent, monkeypatch))


def _at(engine: sa.Engine, *minutes: tuple[datetime, int]) -> None:
    rng = random.Random(7)
    write(engine, [e for hour, minute in minutes for e in run_events(rng, hour + timedelta(minutes=minute))])


def test_an_edge_read_as_rollup_minus_rest_keeps_its_last_start_and_an_empty_rest(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two hours apart from everything load() writes (it writes three days from START): known runs only.
    first, last = START + timedelta(days=4), START + timedelta(days=4, hours=5)
    load(engine, 100)
    _at(engine, (first, 10), (first, 40), (first + timedelta(hours=2), 0), (last, 10), (last, 55))
    refresh(engine, now=NOW)
    # The start's rest [first, first + 5 min) is empty; the end's rest [last + 50 min, last + 1 h) holds
    # the hour's latest run, which must not become the window's last start.
    filters = RunFilters(since=first + timedelta(minutes=5), until=last + timedelta(minutes=50))
    with engine.connect() as conn:
        window = rollup_window.plan(conn, filters.since, filters.until, "hour", open_start=False,  # type: ignore[arg-type]
                                       edges=True)
        assert window is not None and [hour for hour, _ in window.edges] == [first, last]
        fast = stats_rollup.collect(conn, filters, filters.since, filters.until, "hour")  # type: ignore[arg-type]
    assert fast is not None
    assert fast.buckets[first].runs == 2 and fast.buckets[first].last_started_at == first + timedelta(minutes=40)
    assert fast.buckets[last].runs == 1 and fast.buckets[last].last_started_at == last + timedelta(minutes=10)
    assert sum(a.runs for a in fast.buckets.values()) == 4
    assert_same(stats(engine, filters), exact_stats(engine, filters, monkeypatch))


def test_an_edge_whose_rollup_disagrees_with_its_raw_rows_is_read_directly(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(engine, 300)
    refresh(engine, now=NOW)
    # A run written into the rest of an edge hour whose dirty mark is gone before the refresher saw it: what
    # a write landing between the stats' statements looks like.
    _at(engine, (H1, 3))
    with engine.begin() as conn:
        conn.execute(sa.delete(rollup_dirty))
    filters = RunFilters(since=H1 + timedelta(minutes=20), until=H2 + timedelta(minutes=10))
    seen = _spy_plans(monkeypatch)
    fast = stats(engine, filters)
    assert [(flag, [hour for hour, _ in edges]) for flag, edges in seen] == [(True, [H1]), (False, [])]
    assert_same(fast, exact_stats(engine, filters, monkeypatch))


def test_callers_that_do_not_subtract_rests_get_edges_read_directly(engine: sa.Engine) -> None:
    # version_counts (GET /v1/compare) adds window.raw to the spans: an edge hour read whole would
    # count the runs of its rest too.
    load(engine, 300)
    refresh(engine, now=NOW)
    since, until = H1 + timedelta(minutes=5), H2 + timedelta(minutes=55)
    with engine.connect() as conn:
        window = rollup_window.plan(conn, since, until, "day", open_start=False)
        assert window is not None and window.edges == []
        counted = stats_rollup.version_counts(conn, "bot-a", ["1.0", "2.0"], None, since, until)
        raw = {version: n for version, n in conn.execute(
            sa.select(runs.c.agent_version, sa.func.count())
            .where(runs.c.agent_id == "bot-a", runs.c.started_at >= since, runs.c.started_at < until)
            .group_by(runs.c.agent_version)
        )}
    assert counted is not None and {v: agg.runs for v, agg in counted.items()} == raw
