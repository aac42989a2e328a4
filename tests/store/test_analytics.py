"""Run statistics and version comparison on SQLite and PostgreSQL, with generated data whose answer is known.

The scenario: version v2 of ``support-agent`` calls its tool 2x slower than v1 and sees a tool error
three times as often (30% of runs against 10%); half of the runs with a tool error fail after the
retry. Expected numbers are computed here from the generated runs with the standard library, not with
the code under test.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.filters import RunFilters
from agenttracer.store.sql.read import compare, steps
from agenttracer.store.sql.read.compare import compare_versions
from agenttracer.store.sql.read.stats import run_stats
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from agenttracer.store.stats_math import INSUFFICIENT, NOT_SIGNIFICANT, SIGNIFICANT
from tests.support.analytics_data import T0, RunSpec, StepSpec, insert_rows, scenario
from tests.support.db import BACKENDS, drop_pg_schema, new_pg_schema_url

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def pct(values: list[float]) -> tuple[float, float, float]:
    """p50/p95/p99 by the standard library's 'inclusive' quantiles (the same definition as percentile_cont)."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def triple(p: Any) -> tuple[float | None, float | None, float | None]:
    return (p.p50, p.p95, p.p99)


def _migrated(backend: str, tmp: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{(tmp / 'analytics.db').as_posix()}", None
    return new_pg_schema_url()


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """One database per backend holding the scenario, shared by the read-only tests of this module."""
    url, schema = _migrated(str(request.param), tmp_path_factory.mktemp("analytics"))
    engine = make_engine(url)
    try:
        upgrade(engine)
        base, candidate, tiny = scenario()
        insert_rows(engine, base + candidate + tiny)
        yield engine
    finally:
        engine.dispose()
        if schema:
            drop_pg_schema(schema)


def test_stats_counts_rates_and_run_latency(loaded: sa.Engine) -> None:
    base, candidate, _ = scenario()
    everything = base + candidate
    finished = [r for r in everything if r.finished]
    with loaded.connect() as conn:
        s = run_stats(conn, RunFilters(agent_id="support-agent"), now=NOW)
    assert s.total_runs == 202 and s.finished_runs == 200
    assert s.status_counts == {"running": 2, "success": 180, "failure": 20, "partial": 0}
    assert (s.success_rate, s.failure_rate, s.partial_rate) == (0.9, 0.1, 0.0)
    expected = pct([r.duration_ms for r in finished if r.duration_ms is not None])
    assert triple(s.run_latency_ms) == pytest.approx(expected, rel=1e-12)
    assert [(f.failure_type, f.count) for f in s.failures_by_type] == [("tool", 20)]
    assert [(f.failure_code, f.count) for f in s.failures_by_code] == [("timeout", 20)]


def test_stats_latency_attribution_per_step_type_and_name(loaded: sa.Engine) -> None:
    base, candidate, _ = scenario()
    runs_ = base + candidate
    tool = [s for r in runs_ for s in r.steps if s.step_type == "tool"]
    with loaded.connect() as conn:
        s = run_stats(conn, RunFilters(agent_id="support-agent"), now=NOW)
    by_type = {g.step_type: g for g in s.step_types}
    assert set(by_type) == {"plan", "llm", "retrieval", "tool", "respond"}
    t = by_type["tool"]
    assert (t.count, t.error_count, t.retry_count) == (len(tool), sum(x.status == "error" for x in tool), 40)
    assert t.error_rate == pytest.approx(t.error_count / t.count)
    assert triple(t.latency_ms) == pytest.approx(pct([x.latency_ms for x in tool]), rel=1e-12)
    run_time = sum(r.duration_ms or 0.0 for r in runs_)
    tool_in_finished = sum(x.latency_ms for r in runs_ if r.finished for x in r.steps if x.step_type == "tool")
    assert t.share_of_run_time == pytest.approx(tool_in_finished / run_time)
    # The tool dominates the run time; types come most total latency first.
    assert s.step_types[0].step_type == "tool"
    named = {(g.step_type, g.name): g for g in s.step_names}
    assert named[("tool", "billing_api")].count == t.count
    assert named[("llm", "draft_plan")].count == 202  # nested steps are counted as steps
    assert [(f.step_type, f.name, f.error_count) for f in s.top_failing_steps] == [("tool", "billing_api", 60)]


def test_stats_retries(loaded: sa.Engine) -> None:
    base, candidate, _ = scenario()
    all_steps = [s for r in base + candidate for s in r.steps]
    retries = [s for s in all_steps if s.attempt > 1]
    with loaded.connect() as conn:
        r = run_stats(conn, RunFilters(agent_id="support-agent"), now=NOW).retries
    assert (r.retry_steps, r.total_steps) == (len(retries), len(all_steps))
    assert r.retry_rate == pytest.approx(len(retries) / len(all_steps))
    assert (r.runs_with_retries, r.total_runs) == (40, 202)
    assert r.time_in_retries_ms == pytest.approx(sum(s.latency_ms for s in retries))
    assert r.share_of_step_time == pytest.approx(r.time_in_retries_ms / sum(s.latency_ms for s in all_steps))


def test_stats_timeline_buckets_follow_the_range(loaded: sa.Engine) -> None:
    with loaded.connect() as conn:
        hourly = run_stats(conn, RunFilters(agent_id="support-agent", since=T0, until=T0 + timedelta(hours=3)), NOW)
        daily = run_stats(conn, RunFilters(agent_id="support-agent", since=T0 - timedelta(days=6), until=NOW), NOW)
    assert hourly.timeline.bucket == "hour"
    # Runs start one a minute from T0: v1 has 102 (two still running), v2 has 100.
    assert [(p.start, p.runs, p.finished_runs) for p in hourly.timeline.points] == [
        (T0, 120, 120),
        (T0 + timedelta(hours=1), 82, 80),
        (T0 + timedelta(hours=2), 0, 0),
    ]
    first = hourly.timeline.points[0]
    assert first.success_rate == pytest.approx(first.success_runs / 120)
    assert hourly.timeline.points[2].success_rate is None
    base, candidate, _ = scenario()
    second_hour = [r.duration_ms for r in base + candidate
                   if r.duration_ms is not None and r.started_at >= T0 + timedelta(hours=1)]
    assert triple(hourly.timeline.points[1].run_latency_ms) == pytest.approx(pct(second_hour), rel=1e-12)
    assert triple(hourly.timeline.points[2].run_latency_ms) == (None, None, None)
    assert daily.timeline.bucket == "day"
    assert len(daily.timeline.points) == 8  # seven days back to T0's day, through today
    assert sum(p.runs for p in daily.timeline.points) == 202
    assert max(daily.timeline.points, key=lambda p: p.runs).start == T0.replace(hour=0)


def test_stats_use_the_run_filters(loaded: sa.Engine) -> None:
    with loaded.connect() as conn:
        v2 = run_stats(conn, RunFilters(agent_id="support-agent", agent_version="v2"), now=NOW)
        failed = run_stats(conn, RunFilters(agent_id="support-agent", status="failure"), now=NOW)
        nobody = run_stats(conn, RunFilters(agent_id="nobody"), now=NOW)
    assert (v2.total_runs, v2.status_counts["failure"]) == (100, 15)
    assert failed.total_runs == failed.status_counts["failure"] == 20
    assert failed.failure_rate == 1.0
    assert nobody.total_runs == 0 and nobody.success_rate is None
    assert triple(nobody.run_latency_ms) == (None, None, None)
    assert nobody.step_types == [] and nobody.timeline.points == []


def test_compare_flags_slower_and_flakier_tool_as_significant(loaded: sa.Engine) -> None:
    base, candidate, _ = scenario()
    with loaded.connect() as conn:
        c = compare_versions(conn, "support-agent", "v1", "v2")
    assert (c.base.runs, c.base.running_runs, c.candidate.runs) == (100, 2, 100)
    assert (c.success_rate.base, c.success_rate.candidate) == (0.95, 0.85)
    assert c.success_rate.test is not None and c.success_rate.test.verdict == SIGNIFICANT
    assert c.failure_rate.test is not None and c.failure_rate.test.statistic is not None
    assert c.failure_rate.test.statistic > 0  # the candidate fails more

    types = {s.step_type: s for s in c.step_types}
    tool = types["tool"]
    base_tool = [s.latency_ms for r in base if r.finished for s in r.steps if s.step_type == "tool"]
    cand_tool = [s.latency_ms for r in candidate for s in r.steps if s.step_type == "tool"]
    assert triple(tool.latency_ms.base) == pytest.approx(pct(base_tool), rel=1e-12)
    assert triple(tool.latency_ms.candidate) == pytest.approx(pct(cand_tool), rel=1e-12)
    assert tool.latency_ms.delta.p50 == pytest.approx(pct(cand_tool)[0] - pct(base_tool)[0])
    assert tool.latency_ms.test.verdict == SIGNIFICANT and (tool.latency_ms.test.statistic or 0) > 0
    assert tool.error_rate.test is not None and tool.error_rate.test.verdict == SIGNIFICANT
    assert tool.error_rate.candidate == pytest.approx(45 / 130)  # 30 first attempts + 15 retries fail
    assert tool.error_rate.base == pytest.approx(15 / 110)
    # Steps that did not change are not flagged.
    assert types["plan"].latency_ms.test.verdict == NOT_SIGNIFICANT
    assert types["respond"].error_rate.test is not None
    assert types["respond"].error_rate.test.verdict == NOT_SIGNIFICANT

    assert c.run_latency_ms.test.verdict == SIGNIFICANT
    assert c.retry_rate.test is not None and c.retry_rate.test.verdict == SIGNIFICANT
    assert [(f.failure_type, f.failure_code, f.base_count, f.candidate_count) for f in c.failure_mix] == [
        ("tool", "timeout", 5, 15)
    ]
    assert {"step_types.tool.latency_ms", "step_types.tool.error_rate", "success_rate"} <= set(c.significant)
    assert "step_types.plan.latency_ms" not in c.significant


def test_compare_shapes_ignore_retries_and_nested_steps(loaded: sa.Engine) -> None:
    with loaded.connect() as conn:
        c = compare_versions(conn, "support-agent", "v1", "v2")
    shapes = {tuple(s.shape): (s.base_count, s.candidate_count) for s in c.shapes}
    # A retried tool call keeps the plain shape; the nested llm step never appears.
    assert shapes == {
        ("plan", "retrieval", "tool", "respond"): (95, 85),
        ("plan", "retrieval", "tool"): (5, 15),
    }
    assert (c.base.runs, c.candidate.runs) == (100, 100)
    assert c.shapes[0].share.base == 0.95


def test_compare_with_five_runs_per_version_cannot_tell(loaded: sa.Engine) -> None:
    with loaded.connect() as conn:
        c = compare_versions(conn, "tiny-agent", "t1", "t2")
    assert (c.base.runs, c.candidate.runs) == (5, 5)
    # The candidate's tool is 3x slower and always errors, but 5 runs are too few to say so.
    tests = [c.success_rate.test, c.failure_rate.test, c.run_latency_ms.test, c.retry_rate.test]
    tests += [s.latency_ms.test for s in c.step_types] + [s.error_rate.test for s in c.step_types]
    assert tests and all(t is not None and t.verdict == INSUFFICIENT and t.p_value is None for t in tests)
    assert c.significant == []


def test_compare_rejects_same_version_and_handles_unknown_versions(loaded: sa.Engine) -> None:
    with loaded.connect() as conn:
        with pytest.raises(ValueError, match="differ"):
            compare_versions(conn, "support-agent", "v1", "v1")
        c = compare_versions(conn, "support-agent", "v1", "v9")
        nothing = compare_versions(conn, "nobody", "a", "b")
    assert nothing.base.runs == nothing.candidate.runs == 0
    assert nothing.run_latency_ms.test.verdict == INSUFFICIENT and nothing.shapes == []
    assert c.candidate.runs == 0 and c.candidate.success_rate is None
    assert c.success_rate.delta is None and c.success_rate.test is not None
    assert c.success_rate.test.verdict == INSUFFICIENT


def _single(latencies: list[float], version: str) -> list[RunSpec]:
    return [
        RunSpec(run_id=f"00000000-0000-4000-8000-{version}{i:010d}", agent_id="edge", agent_version=version,
                environment="test", started_at=T0 + timedelta(seconds=i), status="success",
                steps=[StepSpec(seq=1, step_type="tool", name="t", latency_ms=x)])
        for i, x in enumerate(latencies)
    ]


def test_percentiles_of_one_two_and_tied_values(loaded: sa.Engine) -> None:
    # Written through a separate engine onto the same database, then read back per version.
    edge = _single([42.0], "01") + _single([10.0, 20.0], "02") + _single([7.0] * 5 + [9.0], "03")
    insert_rows(loaded, edge)
    try:
        with loaded.connect() as conn:
            got = {
                v: triple(run_stats(conn, RunFilters(agent_id="edge", agent_version=v), NOW).step_types[0].latency_ms)
                for v in ("01", "02", "03")
            }
    finally:
        with loaded.begin() as conn:
            conn.execute(sa.text("DELETE FROM runs WHERE agent_id = 'edge'"))
    assert got["01"] == (42.0, 42.0, 42.0)
    assert got["02"] == pytest.approx((15.0, 19.5, 19.9))
    assert got["03"] == pytest.approx((7.0, 8.5, 8.9))


def test_sqlite_and_postgresql_return_identical_results(tmp_path: Path) -> None:
    """Same rows in both databases: every number of stats and compare is equal, bit for bit."""
    results = []
    for backend in BACKENDS:
        url, schema = _migrated(backend, tmp_path)
        engine = make_engine(url)
        try:
            upgrade(engine)
            base, candidate, tiny = scenario()
            insert_rows(engine, base + candidate + tiny)
            with engine.connect() as conn:
                results.append((
                    dataclasses.asdict(run_stats(conn, RunFilters(), now=NOW)),
                    dataclasses.asdict(run_stats(conn, RunFilters(agent_id="support-agent", since=T0), now=NOW)),
                    dataclasses.asdict(compare_versions(conn, "support-agent", "v1", "v2")),
                    dataclasses.asdict(compare_versions(conn, "tiny-agent", "t1", "t2", environment="production")),
                ))
        finally:
            engine.dispose()
            if schema:
                drop_pg_schema(schema)
    sqlite_result, pg_result = results
    assert sqlite_result == pg_result


def test_per_step_numbers_read_the_newest_runs_when_many_match(
    loaded: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _, _ = scenario()
    monkeypatch.setattr(steps, "STEP_SAMPLE_RUNS", 30)
    with loaded.connect() as conn:
        s = run_stats(conn, RunFilters(agent_id="support-agent", agent_version="v1"), now=NOW)
    newest = sorted(base, key=lambda r: r.started_at, reverse=True)[:30]
    assert (s.steps_sampled, s.step_sample_runs) == (True, 30)
    assert s.total_runs == 102  # run-level numbers still cover every run
    tool = next(g for g in s.step_types if g.step_type == "tool")
    sample_tool = [x for r in newest for x in r.steps if x.step_type == "tool"]
    assert tool.count == len(sample_tool)
    assert triple(tool.latency_ms) == pytest.approx(pct([x.latency_ms for x in sample_tool]), rel=1e-12)
    in_finished = sum(x.latency_ms for r in newest if r.finished for x in r.steps if x.step_type == "tool")
    assert tool.share_of_run_time == pytest.approx(in_finished / sum(r.duration_ms or 0.0 for r in newest))


def test_compare_reads_the_newest_runs_of_each_version_when_many_match(
    loaded: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, candidate, _ = scenario()
    monkeypatch.setattr(compare, "COMPARE_SAMPLE_RUNS", 40)
    with loaded.connect() as conn:
        c = compare_versions(conn, "support-agent", "v1", "v2")
    for side, runs_ in ((c.base, base), (c.candidate, candidate)):
        newest = sorted((r for r in runs_ if r.finished), key=lambda r: r.started_at, reverse=True)[:40]
        assert (side.runs, side.finished_runs_in_window, side.sampled) == (40, 100, True)
        assert side.status_counts["failure"] == sum(r.status == "failure" for r in newest)
        durations = [r.duration_ms for r in newest if r.duration_ms is not None]
        assert triple(side.run_latency_ms) == pytest.approx(pct(durations), rel=1e-12)
    assert c.base.running_runs == 2  # counted in the window, never compared
    assert sum(s.base_count for s in c.shapes) == 40
