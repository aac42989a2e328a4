"""The live region's rollups (``store/sql/rollup/live.py``) on SQLite and PostgreSQL: stats, agents and compare
read the not-yet-hourly part of a window from minute and 10-second rows and stay exactly equal to the raw
tables, through late events, in-flight runs and the hourly refresher taking the hour over."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.filters import RunFilters
from agenttracer.store.results import RunStats
from agenttracer.store.sql.read import stats_rollup as analytics_rollup
from agenttracer.store.sql.read.runs import list_agents
from agenttracer.store.sql.read.stats import run_stats
from agenttracer.store.sql.rollup import window as rollup_window
from agenttracer.store.sql.rollup.build import FINE_GRAINS, MINUTE_GRAIN, TEN_S_GRAIN
from agenttracer.store.sql.rollup.live import refresh_live
from agenttracer.store.sql.rollup.marks import read_live, read_state
from agenttracer.store.sql.rollup.refresh import refresh
from agenttracer.store.sql.schema.tables import rollup_runs
from agenttracer.store.sql.write.writer import write_batch
from tests.store.test_rollup import NOW, assert_same, run_events
from tests.support.incoming import incoming

LIVE_NOW = NOW + timedelta(minutes=40)  # the hour from NOW on is live: not rolled up hourly yet


@pytest.fixture(autouse=True)
def _always_rollup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analytics_rollup, "EXACT_MAX_RUNS", 0)


def _write(engine: sa.Engine, events: list[dict[str, Any]]) -> None:
    items = incoming(events, LIVE_NOW)
    assert all(o.status != "rejected" for o in write_batch(engine, items, now=LIVE_NOW))


def _load(engine: sa.Engine, seed: int = 5) -> None:
    """A day of older runs and 40 minutes of live ones, some still in flight."""
    rng = random.Random(seed)
    older = [run_events(rng, NOW - timedelta(seconds=rng.uniform(60, 86_400))) for _ in range(150)]
    live = [run_events(rng, NOW + timedelta(seconds=rng.uniform(0, 40 * 60 - 1))) for _ in range(250)]
    runs = [*older, *live]
    for i in range(0, len(runs), 50):
        _write(engine, [e for run in runs[i:i + 50] for e in run])


def _stats(engine: sa.Engine, filters: RunFilters) -> RunStats:
    with engine.connect() as conn:
        return run_stats(conn, filters, now=LIVE_NOW)


def _exact(engine: sa.Engine, filters: RunFilters, monkeypatch: pytest.MonkeyPatch) -> RunStats:
    with monkeypatch.context() as m:
        m.setattr(analytics_rollup, "collect", lambda *a, **k: None)
        return _stats(engine, filters)


WINDOWS = [
    RunFilters(since=LIVE_NOW - timedelta(hours=24)),  # the dashboard's default
    RunFilters(since=NOW + timedelta(minutes=5, seconds=17), until=NOW + timedelta(minutes=33, seconds=2)),
    RunFilters(since=NOW + timedelta(minutes=12)),  # inside the live region only
    RunFilters(agent_id="bot-a", since=NOW - timedelta(hours=3)),
    RunFilters(environment="staging"),
]


def _refreshed(engine: sa.Engine) -> None:
    refresh(engine, now=LIVE_NOW)
    result = refresh_live(engine, now=LIVE_NOW)
    assert result.live_until == LIVE_NOW and result.buckets > 100 and result.minutes == 40


def _grains(engine: sa.Engine, filters: RunFilters) -> set[str]:
    with engine.connect() as conn:
        window = rollup_window.plan(conn, filters.since or NOW - timedelta(days=2), filters.until, "hour",
                                    open_start=filters.since is None)
    assert window is not None
    return {grain for grain, _, _ in window.spans}


def test_the_live_region_is_read_from_minute_and_ten_second_rows_exactly(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(engine)
    _refreshed(engine)
    with engine.connect() as conn:
        assert read_state(conn) == NOW and read_live(conn) == LIVE_NOW
    assert {"hour", MINUTE_GRAIN} <= _grains(engine, WINDOWS[0])
    assert TEN_S_GRAIN in _grains(engine, WINDOWS[1])  # 12:05:17 -> 12:06 in 10-second rows
    for filters in WINDOWS:
        fast = _stats(engine, filters)
        assert not fast.latency_exact, filters
        assert_same(fast, _exact(engine, filters, monkeypatch))


def test_late_and_in_flight_events_in_the_live_region_stay_exact(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(engine)
    _refreshed(engine)
    rng = random.Random(9)
    late = run_events(rng, NOW + timedelta(minutes=10, seconds=4))
    _write(engine, late[:2])  # a run in flight: its start and first step
    in_between = _grains(engine, WINDOWS[0])
    for filters in WINDOWS:
        assert_same(_stats(engine, filters), _exact(engine, filters, monkeypatch))
    _write(engine, late[2:])  # the rest arrives
    for filters in WINDOWS:
        assert_same(_stats(engine, filters), _exact(engine, filters, monkeypatch))
    assert refresh_live(engine, now=LIVE_NOW + timedelta(seconds=5)).buckets == 1  # only the dirty bucket
    for filters in WINDOWS:
        assert_same(_stats(engine, filters), _exact(engine, filters, monkeypatch))
    assert MINUTE_GRAIN in in_between


def test_the_hourly_refresher_takes_the_hour_over_and_drops_its_finer_rows(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(engine)
    _refreshed(engine)
    later = NOW + timedelta(hours=1, minutes=5)
    refresh(engine, now=later)
    with engine.connect() as conn:
        assert read_state(conn) == NOW + timedelta(hours=1)
        fine = conn.execute(sa.select(sa.func.count()).select_from(rollup_runs)
                            .where(rollup_runs.c.grain.in_(FINE_GRAINS))).scalar()
    assert fine == 0
    for filters in WINDOWS:
        assert_same(_stats(engine, filters), _exact(engine, filters, monkeypatch))


def test_agents_count_the_live_region_from_its_rows(engine: sa.Engine) -> None:
    _load(engine)
    with engine.connect() as conn:
        before = list_agents(conn)
    _refreshed(engine)
    with engine.connect() as conn:
        after = list_agents(conn)
    assert after == before and sum(a["run_count"] for a in after) == 400


def test_a_live_pass_without_an_hourly_state_or_far_behind_does_nothing(engine: sa.Engine) -> None:
    _load(engine)
    assert refresh_live(engine, now=LIVE_NOW).live_until is None  # nothing rolled up hourly yet
    refresh(engine, now=NOW - timedelta(hours=5))
    result = refresh_live(engine, now=LIVE_NOW)  # rolled_until is 5 hours behind: wait for the hourly one
    assert result.buckets == 0 and result.live_until is None
    with engine.connect() as conn:
        assert read_live(conn) is None
