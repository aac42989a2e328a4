"""Rollups on SQLite and PostgreSQL: stats read from them equal stats from the raw tables (counts exactly,
percentiles within 1 %), and stay so under late, replayed and out-of-order events, before and after the
refresher runs."""

from __future__ import annotations

import itertools
import math
import random
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from agenttracer.store.compare_result import Comparison
from agenttracer.store.filters import RunFilters
from agenttracer.store.histogram import RELATIVE_ERROR
from agenttracer.store.results import RunStats
from agenttracer.store.sql.read import stats_rollup
from agenttracer.store.sql.read.compare import compare_versions
from agenttracer.store.sql.read.runs import list_agents
from agenttracer.store.sql.read.stats import run_stats
from agenttracer.store.sql.rollup.marks import dirty_hours, read_state
from agenttracer.store.sql.rollup.refresh import refresh
from agenttracer.store.sql.schema.tables import rollup_runs, rollup_steps
from agenttracer.store.sql.write.retention import prune
from agenttracer.store.sql.write.writer import write_batch
from tests.support.incoming import incoming

START = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
NAMES = {"plan": ["plan_task"], "llm": ["gpt", "claude"], "tool": ["billing_api", "search_web", "crm"]}


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def run_events(rng: random.Random, started: datetime, **identity: str) -> list[dict[str, Any]]:
    """One run's events: plan, a few llm/tool steps (some failing and retried), maybe a failure, maybe still running."""
    run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    ident = {"agent_id": identity.get("agent_id", rng.choice(["bot-a", "bot-b"])),
             "agent_version": identity.get("agent_version", rng.choice(["1.0", "2.0"])),
             "environment": identity.get("environment", rng.choice(["production", "staging"]))}
    events: list[dict[str, Any]] = [{"type": "run_start", "run_id": run_id, "started_at": _iso(started), **ident}]
    t = started
    seq = 0
    status = "success"
    for step_type in ["plan", *rng.choices(["llm", "tool"], k=rng.randint(1, 4))]:
        name = rng.choice(NAMES[step_type])
        for attempt in (1, 2):
            seq += 1
            latency = rng.lognormvariate(math.log(400.0), 0.9)
            failed = rng.random() < 0.12
            events.append({
                "type": "step", "run_id": run_id, "seq": seq, "step_type": step_type, "name": name,
                "started_at": _iso(t), "ended_at": _iso(t + timedelta(milliseconds=latency)), "latency_ms": latency,
                "status": "error" if failed else "ok", "attempt": attempt,
                **({"retry_of_seq": seq - 1} if attempt == 2 else {}),
                **({"error_class": "TimeoutError", "failure_code": "timeout"} if failed else {}),
            })
            t += timedelta(milliseconds=latency)
            if not failed:
                break
        else:
            status = "failure" if rng.random() < 0.7 else "partial"
            if status == "failure":
                events.append({"type": "failure", "run_id": run_id, "failure_type": "tool" if step_type == "tool"
                               else "model", "failure_code": "timeout", "step_seq": seq, "recorded_at": _iso(t)})
            break
    _nest(rng, events, started, t)
    if rng.random() > 0.05:
        events.append({"type": "run_end", "run_id": run_id, "ended_at": _iso(t + timedelta(milliseconds=20)),
                       "status": status, **ident})
    return events


def _nest(rng: random.Random, events: list[dict[str, Any]], started: datetime, ended: datetime) -> None:
    """Make some runs nested, so that self time (not summed latency) is what the rollups must keep exact:
    steps moved back to run in parallel with the one before, and an agent step (seq 1) around the others."""
    steps = [e for e in events if e["type"] == "step"]
    for previous, step in itertools.pairwise(steps):
        if rng.random() < 0.3:
            back = timedelta(milliseconds=rng.uniform(0, previous["latency_ms"]))
            step["started_at"] = _iso(datetime.fromisoformat(step["started_at"]) - back)
            step["ended_at"] = _iso(datetime.fromisoformat(step["ended_at"]) - back)
    if not steps or rng.random() < 0.5:
        return
    for event in events:  # a parent's seq comes before its children's: make room for seq 1
        for key in ("seq", "retry_of_seq", "step_seq"):
            if key in event:
                event[key] += 1
        if event["type"] == "step":
            event["parent_seq"] = 1
    events.insert(1, {
        "type": "step", "run_id": events[0]["run_id"], "seq": 1, "step_type": "other", "name": "agent",
        "started_at": _iso(started), "ended_at": _iso(ended), "status": "ok", "attempt": 1,
        "latency_ms": (ended - started) / timedelta(milliseconds=1),
    })


def write(engine: sa.Engine, events: list[dict[str, Any]]) -> None:
    items = incoming(events, NOW)
    outcomes = write_batch(engine, items, now=NOW)
    assert all(o.status != "rejected" for o in outcomes)


def load(engine: sa.Engine, runs: int, seed: int = 1) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    out = [run_events(rng, START + timedelta(seconds=rng.uniform(0, 3 * 86400))) for _ in range(runs)]
    for i in range(0, runs, 50):
        write(engine, [e for run in out[i:i + 50] for e in run])
    return out


def exact_stats(engine: sa.Engine, filters: RunFilters, monkeypatch: pytest.MonkeyPatch) -> RunStats:
    with monkeypatch.context() as m:
        m.setattr(stats_rollup, "collect", lambda *a, **k: None)
        with engine.connect() as conn:
            return run_stats(conn, filters, now=NOW)


def stats(engine: sa.Engine, filters: RunFilters) -> RunStats:
    with engine.connect() as conn:
        return run_stats(conn, filters, now=NOW)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= RELATIVE_ERROR * abs(b) + 1e-9


def assert_same(fast: RunStats, exact: RunStats) -> None:
    """Counts, rates and sums equal; percentiles within the histogram bound."""
    assert (fast.total_runs, fast.finished_runs, fast.status_counts) == (
        exact.total_runs, exact.finished_runs, exact.status_counts)
    assert fast.failures_by_type == exact.failures_by_type
    assert fast.failures_by_code == exact.failures_by_code
    r, e = fast.retries, exact.retries
    assert (r.retry_steps, r.total_steps, r.runs_with_retries) == (e.retry_steps, e.total_steps, e.runs_with_retries)
    assert r.time_in_retries_ms == pytest.approx(e.time_in_retries_ms, rel=1e-9)
    for q in ("p50", "p95", "p99"):
        assert _close(getattr(fast.run_latency_ms, q), getattr(exact.run_latency_ms, q)), q
    assert [(p.start, p.runs, p.finished_runs, p.success_runs, p.failure_runs) for p in fast.timeline.points] == [
        (p.start, p.runs, p.finished_runs, p.success_runs, p.failure_runs) for p in exact.timeline.points]
    for fp, ep in zip(fast.timeline.points, exact.timeline.points, strict=True):
        assert _close(fp.run_latency_ms.p95, ep.run_latency_ms.p95)
    assert not exact.steps_sampled
    for f_groups, e_groups in ((fast.step_types, exact.step_types), (fast.step_names, exact.step_names)):
        assert [(g.step_type, g.name, g.count, g.error_count, g.retry_count) for g in f_groups] == [
            (g.step_type, g.name, g.count, g.error_count, g.retry_count) for g in e_groups]
        for fg, eg in zip(f_groups, e_groups, strict=True):
            assert fg.total_latency_ms == pytest.approx(eg.total_latency_ms, rel=1e-9)
            assert fg.self_time_ms == pytest.approx(eg.self_time_ms, rel=1e-9)
            assert fg.share_of_run_time == pytest.approx(eg.share_of_run_time, rel=1e-9)
            for q in ("p50", "p95", "p99"):
                assert _close(getattr(fg.latency_ms, q), getattr(eg.latency_ms, q)), (fg.name, q)
    assert fast.top_failing_steps == exact.top_failing_steps
    assert fast.run_time.total_ms == pytest.approx(exact.run_time.total_ms, rel=1e-9)
    assert fast.run_time.untraced_ms == pytest.approx(exact.run_time.untraced_ms, rel=1e-9, abs=1e-6)
    shares = [g.share_of_run_time or 0.0 for g in fast.step_types]
    if fast.run_time.untraced_share is not None:
        assert sum(shares) + fast.run_time.untraced_share == pytest.approx(1.0, rel=1e-9)


WINDOWS = [
    RunFilters(),
    RunFilters(since=START + timedelta(days=1), until=START + timedelta(days=2)),  # hourly timeline
    RunFilters(since=START + timedelta(hours=5, minutes=17), until=START + timedelta(days=2, hours=20, minutes=3)),
    RunFilters(agent_id="bot-a", since=START, until=START + timedelta(days=3)),  # whole days
    RunFilters(agent_id="bot-b", agent_version="2.0", environment="staging"),
    RunFilters(environment="production", since=START + timedelta(hours=30)),
    RunFilters(agent_version="1.0", until=START + timedelta(days=2, minutes=30)),
]


@pytest.fixture(autouse=True)
def _always_rollup(monkeypatch: pytest.MonkeyPatch) -> None:
    # These data sets are small; without this the rollup path would hand them to the exact path.
    monkeypatch.setattr(stats_rollup, "EXACT_MAX_RUNS", 0)


def test_stats_from_rollups_equal_stats_from_raw(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    load(engine, 400)
    assert stats(engine, RunFilters()).latency_exact  # nothing rolled up yet: the exact path answers
    result = refresh(engine, now=NOW)
    assert result.hours > 60 and result.days == 3 and result.dirty_left == 0
    for filters in WINDOWS:
        fast = stats(engine, filters)
        assert not fast.latency_exact and not fast.steps_sampled, filters
        assert fast.step_sample_runs == fast.total_runs
        assert_same(fast, exact_stats(engine, filters, monkeypatch))


def test_filters_the_rollups_do_not_keep_stay_exact(engine: sa.Engine) -> None:
    load(engine, 60)
    refresh(engine, now=NOW)
    for filters in (RunFilters(status="failure"), RunFilters(failure_type="tool"), RunFilters(step_name="gpt")):
        assert stats(engine, filters).latency_exact


def test_small_windows_stay_exact(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats_rollup, "EXACT_MAX_RUNS", 2_000)
    load(engine, 60)
    refresh(engine, now=NOW)
    assert stats(engine, RunFilters()).latency_exact


def test_late_replayed_and_out_of_order_events_keep_stats_exact(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = load(engine, 200)
    refresh(engine, now=NOW)
    rng = random.Random(99)
    old_hour = START + timedelta(days=1, hours=3)

    late = run_events(rng, old_hour + timedelta(minutes=10))
    placeholder = run_events(rng, old_hour + timedelta(hours=5, minutes=50))
    write(engine, late[:2])
    write(engine, [e for e in placeholder if e["type"] == "step"])  # a placeholder run, hour + 5
    refresh(engine, now=NOW)
    # Steps arriving after their hour was rolled up.
    write(engine, late[2:])
    # The placeholder's run_start, with a start two hours earlier than any of its steps.
    earlier = dict(placeholder[0], started_at=_iso(old_hour - timedelta(hours=2)))
    write(engine, [earlier, *placeholder[1:]])
    # A replayed batch: everything stored again, nothing changes, nothing becomes dirty.
    with engine.connect() as conn:
        before = set(dirty_hours(conn))
    write(engine, [e for run in runs[:30] for e in run])
    with engine.connect() as conn:
        assert set(dirty_hours(conn)) == before
        rolled = read_state(conn)
    assert rolled is not None
    assert {old_hour, old_hour + timedelta(hours=5), old_hour - timedelta(hours=2)} <= before

    for filters in WINDOWS:  # dirty hours are read raw: exact before the refresher catches up
        assert_same(stats(engine, filters), exact_stats(engine, filters, monkeypatch))
    assert refresh(engine, now=NOW).dirty_left == 0
    for filters in WINDOWS:  # and after
        assert_same(stats(engine, filters), exact_stats(engine, filters, monkeypatch))


def test_a_write_between_recompute_and_clear_leaves_the_hour_dirty(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(engine, 100)
    refresh(engine, now=NOW)
    rng = random.Random(5)
    hour = START + timedelta(days=2, hours=7)
    write(engine, run_events(rng, hour + timedelta(minutes=1)))
    concurrent = run_events(rng, hour + timedelta(minutes=2))
    writers: list[threading.Thread] = []

    def before_clear(refreshed: datetime) -> None:
        if refreshed != hour or writers:
            return
        thread = threading.Thread(target=write, args=(engine, concurrent))
        writers.append(thread)
        thread.start()
        if engine.dialect.name == "postgresql":
            thread.join()  # committed while the refresher's snapshot is still open
        # On SQLite the refresher holds the write lock: the batch commits right after the refresh.

    result = refresh(engine, now=NOW, before_clear=before_clear)
    writers[0].join()
    assert result.hours >= 1
    with engine.connect() as conn:
        assert hour in dirty_hours(conn)  # the concurrent batch is not in the rollup: its mark survived
    filters = RunFilters(since=hour - timedelta(hours=3), until=hour + timedelta(hours=3))
    fast = stats(engine, filters)
    assert not fast.latency_exact
    assert_same(fast, exact_stats(engine, filters, monkeypatch))
    refresh(engine, now=NOW)
    with engine.connect() as conn:
        assert hour not in dirty_hours(conn)


def test_retention_marks_the_pruned_hours_and_the_refresher_drops_their_rollups(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(engine, 150)
    refresh(engine, now=NOW)
    cutoff_age = NOW - (START + timedelta(days=1, hours=12))
    prune(engine, cutoff_age, now=NOW)
    assert_same(stats(engine, RunFilters()), exact_stats(engine, RunFilters(), monkeypatch))
    refresh(engine, now=NOW)
    with engine.connect() as conn:
        oldest = conn.execute(sa.select(sa.func.min(rollup_runs.c.bucket_start))).scalar_one()
    assert oldest >= START + timedelta(days=1)
    assert_same(stats(engine, RunFilters()), exact_stats(engine, RunFilters(), monkeypatch))


def test_the_live_hour_is_not_rolled_up_until_it_has_settled(engine: sa.Engine) -> None:
    load(engine, 50)
    live = START + timedelta(days=3, hours=2)
    write(engine, run_events(random.Random(1), live + timedelta(minutes=5)))
    refresh(engine, now=live + timedelta(minutes=30), settle=timedelta(minutes=2))
    with engine.connect() as conn:
        assert read_state(conn) == live
    refresh(engine, now=live + timedelta(hours=1, minutes=3), settle=timedelta(minutes=2))
    with engine.connect() as conn:
        assert read_state(conn) == live + timedelta(hours=1)


def test_rebuild_gives_the_same_rollups_and_histograms_hold_only_integers(engine: sa.Engine) -> None:
    load(engine, 120)
    refresh(engine, now=NOW)

    def snapshot() -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(rollup_steps).order_by(*rollup_steps.primary_key.columns)).all()
        return [tuple(r) for r in rows]

    incremental = snapshot()
    assert refresh(engine, now=NOW, rebuild=True).hours > 0
    assert snapshot() == incremental
    with engine.connect() as conn:
        docs = conn.execute(sa.select(sa.cast(rollup_steps.c.latency_hist, sa.Text))).scalars().all()
        docs += conn.execute(sa.select(sa.cast(rollup_runs.c.duration_hist, sa.Text))).scalars().all()
    assert docs and all(all(isinstance(x, int) for x in orjson.loads(d)) for d in docs)


def test_agents_from_rollups_equal_agents_from_raw(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    load(engine, 150)
    refresh(engine, now=NOW)
    write(engine, run_events(random.Random(4), START + timedelta(hours=7, minutes=3), agent_id="bot-c"))  # dirty
    write(engine, run_events(random.Random(5), NOW + timedelta(hours=2)))  # not rolled up yet
    with engine.connect() as conn:
        assert stats_rollup.agent_counts(conn) is not None
        fast = list_agents(conn)
    with monkeypatch.context() as m, engine.connect() as conn:
        m.setattr(stats_rollup, "agent_counts", lambda *_args: None)
        exact = list_agents(conn)
    assert fast == exact and {a["agent_id"] for a in fast} == {"bot-a", "bot-b", "bot-c"}


@pytest.mark.parametrize("window", [
    (START, START + timedelta(days=3), None),  # whole days
    (START + timedelta(hours=5, minutes=17), START + timedelta(days=2, hours=20, minutes=3), "production"),
    (START + timedelta(hours=30), None, None),  # open end: the unrolled hours are read raw
])
def test_compare_counts_from_rollups_equal_counts_from_raw(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, window: tuple[datetime, datetime | None, str | None]
) -> None:
    since, until, environment = window
    load(engine, 150)
    refresh(engine, now=NOW)
    write(engine, run_events(random.Random(4), START + timedelta(hours=7, minutes=3), agent_id="bot-a"))  # dirty
    write(engine, run_events(random.Random(5), NOW + timedelta(hours=2), agent_id="bot-a"))  # not rolled up yet

    def compare() -> Comparison:
        with engine.connect() as conn:
            return compare_versions(conn, "bot-a", "1.0", "2.0", environment, since, until)

    with engine.connect() as conn:
        counted = stats_rollup.version_counts(conn, "bot-a", ["1.0", "2.0"], environment, since, until)
    assert counted is not None and counted["1.0"].runs > 0
    fast = compare()
    with monkeypatch.context() as m:
        m.setattr(stats_rollup, "version_counts", lambda *a, **k: None)
        exact = compare()
    assert fast == exact
    assert fast.base.finished_runs_in_window + fast.base.running_runs == counted["1.0"].runs
