"""Window planning (``store/sql/rollup/window.py``) on SQLite and PostgreSQL: its work depends on the data, not on
how far back or forward the requested window reaches, and windows reaching to the ends of the calendar
answer the same numbers as the exact path."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from agenttracer.store.filters import RunFilters
from agenttracer.store.sql.read import stats_rollup
from agenttracer.store.sql.read.runs import list_agents
from agenttracer.store.sql.rollup import window as rollup_window
from agenttracer.store.sql.rollup.refresh import refresh
from tests.store.test_rollup import NOW, START, assert_same, exact_stats, load, run_events, stats, write

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DAWN = datetime.min.replace(tzinfo=timezone.utc)
LONG_AGO = datetime(2010, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _always_rollup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats_rollup, "EXACT_MAX_RUNS", 0)


def _with_one_old_run(engine: sa.Engine) -> None:
    """Recent data plus one run sixteen years earlier: the shape that made every unfiltered stats plan
    walk ~140,000 hours."""
    load(engine, 120)
    write(engine, run_events(random.Random(7), LONG_AGO))
    refresh(engine, now=NOW)


@pytest.mark.parametrize("since", [EPOCH, DAWN, LONG_AGO - timedelta(minutes=20), None])
def test_windows_reaching_far_back_equal_the_exact_path(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, since: datetime | None
) -> None:
    _with_one_old_run(engine)
    filters = RunFilters(since=since)
    fast = stats(engine, filters)
    assert not fast.latency_exact  # answered from the rollups
    exact = exact_stats(engine, filters, monkeypatch)
    assert fast.total_runs == 121
    assert_same(fast, exact)


def test_windows_reaching_the_calendar_ends_answer(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_one_old_run(engine)
    far = datetime.max.replace(tzinfo=timezone.utc)
    for filters in (RunFilters(since=DAWN, until=far), RunFilters(until=far),
                    RunFilters(since=far - timedelta(hours=1)), RunFilters(since=DAWN, until=DAWN + timedelta(hours=1)),
                    RunFilters(agent_id="bot-a", since=EPOCH, until=far)):
        assert_same(stats(engine, filters), exact_stats(engine, filters, monkeypatch))


def test_the_plan_size_depends_on_the_data_not_on_the_window(engine: sa.Engine) -> None:
    _with_one_old_run(engine)
    with engine.connect() as conn:
        sizes = {}
        for since in (DAWN, EPOCH, LONG_AGO, START):
            window = rollup_window.plan(conn, since, None, "day", open_start=False, edges=True)
            assert window is not None
            sizes[since] = len(window.spans) + len(window.raw) + len(window.edges)
    # One run in 2010 and three days of runs in 2026: a few spans (hours and days around each stretch of
    # data, or one stretch between them), the raw tail after rolled_until; nothing per hour of 1970-2026.
    assert max(sizes.values()) <= 8, sizes
    # From the dawn of the calendar or from 1970: the same plan (a raw part up to the first run's hour more
    # than a window starting on that hour).
    assert sizes[DAWN] == sizes[EPOCH] == sizes[LONG_AGO] + 1


def test_dirty_hours_split_the_plan_into_a_bounded_number_of_spans(engine: sa.Engine) -> None:
    _with_one_old_run(engine)
    # Late events for five different old hours: each becomes one raw gap, nothing else grows.
    rng = random.Random(3)
    for i in range(5):
        write(engine, run_events(rng, START + timedelta(hours=10 * i + 1, minutes=5)))
    with engine.connect() as conn:
        window = rollup_window.plan(conn, EPOCH, None, "hour", open_start=False)
        assert window is not None
        assert len(window.raw) == 1 + 5 + 1  # before the first clean hour, the five dirty hours, the tail
        assert len(window.spans) <= 2 + 5


def test_agents_with_one_run_long_ago_count_every_run(engine: sa.Engine) -> None:
    _with_one_old_run(engine)
    with engine.connect() as conn:
        agents = list_agents(conn)
    assert sum(a["run_count"] for a in agents) == 121
