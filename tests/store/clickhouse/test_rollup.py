"""ClickHouse rollups: stats read from them give the exact path's counts and percentiles within the
sketch's accuracy, and stay exact while runs change, move and disappear after they were rolled up."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from agenttracer.store.clickhouse import rollup
from agenttracer.store.clickhouse.connection import Connection, Result, connect
from agenttracer.store.clickhouse.histogram import bucket_sql, with_bounds
from agenttracer.store.clickhouse.newest import micros
from agenttracer.store.clickhouse.read import stats as ch_stats
from agenttracer.store.clickhouse.read import stats_rollup
from agenttracer.store.clickhouse.rollup import freshness, refresh
from agenttracer.store.clickhouse.schema.migrate import current_revision, upgrade
from agenttracer.store.clickhouse.write import retention
from agenttracer.store.filters import RunFilters
from agenttracer.store.histogram import BOUNDS, LOWEST_MS, RELATIVE_ERROR, bucket_of
from agenttracer.store.results import RunStats
from tests.support.rundata import T0, RunSpec, StepSpec
from tests.support.rundata_clickhouse import insert_statement, run_rows

NOW = T0 + timedelta(days=3)
WINDOW = RunFilters(since=T0 - timedelta(minutes=30), until=T0 + timedelta(hours=47, minutes=30))


def _fleet(n: int, seed: int = 11) -> list[RunSpec]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        status = rnd.choice(["success", "success", "failure", "partial", "running"])
        steps = [StepSpec(1, "llm", "draft", 0, rnd.uniform(5, 500)),
                 StepSpec(2, "tool", "search", 600, rnd.uniform(1, 50), status=rnd.choice(["ok", "error"]))]
        if rnd.random() < 0.2:
            steps.append(StepSpec(3, "tool", "search", 700, 5, attempt=2, retry_of_seq=2))
        failure = {"failure_type": "tool", "failure_code": rnd.choice(["timeout", "http_error"])} \
            if status == "failure" else None
        out.append(RunSpec(rnd.choice(["a", "b"]), rnd.choice(["1", "2"]), "prod",
                           T0 + timedelta(seconds=rnd.uniform(-3600, 49 * 3600)), status, steps, failure=failure))
    return out


@pytest.fixture
def ch(chdb_url: str) -> Iterator[Connection]:
    conn = connect(chdb_url)
    yield conn
    conn.close()


def load(ch: Connection, specs: list[RunSpec], **kwargs: Any) -> None:
    runs, steps = run_rows(specs, **kwargs)
    ch.command(insert_statement("runs", runs))
    ch.command(insert_statement("steps", steps))


def exact(ch: Connection, filters: RunFilters) -> RunStats:
    """The stats with the rollups out of the way."""
    saved = stats_rollup.EXACT_MAX_RUNS
    stats_rollup.EXACT_MAX_RUNS = 10**9
    try:
        return ch_stats.run_stats(ch, filters, NOW)
    finally:
        stats_rollup.EXACT_MAX_RUNS = saved


def agree(rolled: RunStats, want: RunStats) -> None:
    """Equal but for the percentiles (within the sketch's accuracy: runs and steps) and the flag saying so."""
    assert not rolled.latency_exact and want.latency_exact
    a, b = dataclasses.asdict(rolled), dataclasses.asdict(want)
    for side in (a, b):
        for key in ("latency_exact", "generated_at"):
            side.pop(key)
    assert _close(a, b)


_PERCENTILES = {"p50", "p95", "p99"}


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == _PERCENTILES == b.keys():
        # The sketch is within its relative accuracy of a sample value next to the exact one.
        return all((a[q] is None) == (b[q] is None) and
                   (b[q] is None or a[q] == pytest.approx(b[q], rel=3 * RELATIVE_ERROR, abs=1.0))
                   for q in _PERCENTILES)
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.slow
def test_rolled_up_stats_match_the_exact_path(ch: Connection) -> None:
    specs = _fleet(3000)
    load(ch, specs)
    assert ch_stats.run_stats(ch, WINDOW, NOW).latency_exact  # nothing rolled up: exact
    assert refresh(ch, now=NOW).units > 0
    for filters in (WINDOW, dataclasses.replace(WINDOW, agent_id="a"),
                    dataclasses.replace(WINDOW, agent_version="2", environment="prod")):
        rolled = ch_stats.run_stats(ch, filters, NOW)
        if rolled.total_runs > stats_rollup.EXACT_MAX_RUNS:
            agree(rolled, exact(ch, filters))
    assert refresh(ch, now=NOW).units == 0  # nothing changed: nothing recomputed

    # Changes after the refresh: finished runs, a moved start, a deleted run; read exactly before the
    # next refresh (those hours read raw) and after it.
    changed = [s for s in specs if s.status == "running"][:50]
    for s in changed:
        s.status = "success"
    load(ch, changed, version=2)
    moved = specs[0]
    old_key, _ = run_rows([moved], version=3)
    old_key[0]["is_deleted"] = 1
    moved.started_at = moved.started_at + timedelta(hours=5)
    ch.command(insert_statement("runs", old_key))
    load(ch, [moved], version=4)
    gone, _ = run_rows([specs[1]], version=5)
    gone[0]["is_deleted"] = 1
    ch.command(insert_statement("runs", gone))
    agree(ch_stats.run_stats(ch, WINDOW, NOW), exact(ch, WINDOW))
    assert refresh(ch, now=NOW).units > 0
    agree(ch_stats.run_stats(ch, WINDOW, NOW), exact(ch, WINDOW))


def test_a_refresh_pass_is_bounded_by_runs_as_well_as_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollup, "UNITS_PER_PASS", 3)
    monkeypatch.setattr(rollup, "RUNS_PER_PASS", 10)
    raw = {"u1": (4, 1), "u2": (5, 1), "u3": (2, 1), "u4": (25, 1), "u5": (1, 1), "u6": (1, 1), "u7": (1, 1),
           "u8": (1, 1)}
    # u1+u2 fit, u3 would pass 10 rows; u4 alone exceeds the bound and goes alone; u5..u7 fill three units.
    assert list(rollup.passes(list(raw), raw)) == [["u1", "u2"], ["u3"], ["u4"], ["u5", "u6", "u7"], ["u8"]]
    assert list(rollup.passes([], raw)) == []


@pytest.mark.slow
def test_rollups_built_in_many_small_passes_answer_as_raw(ch: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    load(ch, _fleet(400))
    monkeypatch.setattr(rollup, "RUNS_PER_PASS", 5)  # a pass or more per (agent, hour)
    monkeypatch.setattr(stats_rollup, "EXACT_MAX_RUNS", 0)  # the rollups answer however small the window
    assert refresh(ch, now=NOW).units > 0
    assert refresh(ch, now=NOW).units == 0
    for filters in (WINDOW, dataclasses.replace(WINDOW, agent_id="a")):
        agree(ch_stats.run_stats(ch, filters, NOW), exact(ch, filters))


def test_small_answers_stay_exact(ch: Connection) -> None:
    load(ch, _fleet(300))
    refresh(ch, now=NOW)
    assert ch_stats.run_stats(ch, WINDOW, NOW).latency_exact
    assert ch_stats.run_stats(ch, dataclasses.replace(WINDOW, status="failure"), NOW).latency_exact


@pytest.mark.slow
def test_v0004_on_a_rolled_up_v0003_database(ch: Connection) -> None:
    """A database rolled up before the step rollups existed: after the migration every unit reads raw (its
    steps have no rollup rows yet) until the next refresh recomputes them all, step rollups included."""
    load(ch, _fleet(2500))
    units = refresh(ch, now=NOW).units
    # What v0003 with its rollups looked like: the run rollups and their sources, no step tables.
    for table in ("rollup_steps", "step_self_time", "rollup_runs_daily", "rollup_steps_daily", "rollup_days"):
        ch.command(f"DROP TABLE {table}")
    ch.command("ALTER TABLE schema_migrations DELETE WHERE number >= 4 SETTINGS mutations_sync = 1")
    assert current_revision(ch) == "v0003_default_project"
    assert upgrade(ch)[0] == 4
    assert ch.query("SELECT count() FROM rollup_sources FINAL").rows == [(0,)]
    want = exact(ch, WINDOW)
    same_exact = ch_stats.run_stats(ch, WINDOW, NOW)
    assert same_exact.latency_exact and _close(dataclasses.asdict(same_exact), dataclasses.asdict(want))
    assert refresh(ch, now=NOW).units == units
    assert ch.query("SELECT count() > 0 FROM step_self_time FINAL").rows == [(1,)]
    agree(ch_stats.run_stats(ch, WINDOW, NOW), want)


# --- Daily rollups: a window bucketed by day reads its whole days from them.

DAYS_NOW = T0 + timedelta(days=7)
# Partial days at both ends, so edge hours, hourly rows and daily rows all take part.
DAYS_WINDOW = RunFilters(since=T0 + timedelta(hours=5, minutes=37), until=T0 + timedelta(days=5, hours=3, minutes=10))


def _days_fleet(n: int) -> list[RunSpec]:
    specs = _fleet(n, seed=17)
    for i, spec in enumerate(specs):
        spec.started_at = T0 + timedelta(seconds=(i * 6 * 86_400 / n) % (6 * 86_400))
    return specs


class Recorded:
    """The connection, every statement it was sent kept in ``sent``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sent: list[str] = []

    def query(self, sql: str, params: Any = None, settings: Any = None) -> Result:
        self.sent.append(sql)
        return self.conn.query(sql, params, settings)


def rolled_daily(ch: Connection, filters: RunFilters) -> tuple[RunStats, bool]:
    """The stats, and whether they read daily rollup rows."""
    recorded = Recorded(ch)
    got = ch_stats.run_stats(recorded, filters, DAYS_NOW)
    return got, any("rollup_runs_daily" in sql for sql in recorded.sent)


@pytest.mark.slow
def test_daily_rollups_answer_as_raw_while_runs_change_and_go(ch: Connection) -> None:
    specs = _days_fleet(6000)
    load(ch, specs)
    first = refresh(ch, now=DAYS_NOW)
    # A row per (project, agent, day): two agents over seven calendar days (T0 is noon).
    assert first.units > 0 and first.days == 14
    assert ch.query("SELECT count() FROM rollup_days FINAL").rows == [(14,)]
    for filters in (DAYS_WINDOW, dataclasses.replace(DAYS_WINDOW, agent_id="a"),
                    dataclasses.replace(DAYS_WINDOW, agent_version="2", environment="prod")):
        got, daily = rolled_daily(ch, filters)
        assert daily
        agree(got, exact(ch, filters))
    # A short window is bucketed by hour: no daily rows.
    assert not rolled_daily(ch, WINDOW)[1]

    # A run gone from a whole day inside the window and one finished there: that day reads hourly and raw
    # until the next refresh rebuilds it.
    inside = [s for s in specs if T0 + timedelta(days=2) <= s.started_at < T0 + timedelta(days=3)]
    gone, _ = run_rows([inside[0]], version=5)
    gone[0]["is_deleted"] = 1
    ch.command(insert_statement("runs", gone))
    finished = next(s for s in inside if s.status == "running")
    finished.status = "success"
    load(ch, [finished], version=6)
    got, daily = rolled_daily(ch, DAYS_WINDOW)
    agree(got, exact(ch, DAYS_WINDOW))
    changed = [(s.agent_id, s.started_at.replace(minute=0, second=0, microsecond=0)) for s in (inside[0], finished)]
    # The changed runs' hours are recomputed, and the days holding them rebuilt.
    assert refresh(ch, now=DAYS_NOW) == (len(set(changed)), len({(a, h.date()) for a, h in changed}))
    got, daily = rolled_daily(ch, DAYS_WINDOW)
    assert daily
    agree(got, exact(ch, DAYS_WINDOW))

    # Retention: the first days' runs deleted; their hours, then their days, follow.
    retention.prune(ch, timedelta(days=5), now=T0 + timedelta(days=7))
    assert refresh(ch, now=DAYS_NOW).units > 0
    got, daily = rolled_daily(ch, DAYS_WINDOW)
    assert daily
    agree(got, exact(ch, DAYS_WINDOW))
    assert ch.query("SELECT count() FROM rollup_runs_daily FINAL WHERE day < {t:DateTime64(6, 'UTC')}",
                    {"t": T0 + timedelta(hours=36)}).rows == [(0,)]  # the days wholly pruned


@pytest.mark.slow
def test_the_raw_parts_self_time_is_walked_only_where_the_refresher_has_not_stored_it(ch: Connection) -> None:
    """Edge hours whose units are clean have every finished run's self time stored: three statements answer.
    A run finished there since makes its unit dirty: its self time is walked, and the answer stays the same."""
    specs = _days_fleet(6000)
    load(ch, specs)
    refresh(ch, now=DAYS_NOW)
    recorded = Recorded(ch)
    agree(ch_stats.run_stats(recorded, DAYS_WINDOW, DAYS_NOW), exact(ch, DAYS_WINDOW))
    assert len(recorded.sent) == 3 and not any("s.parent_seq" in sql for sql in recorded.sent)
    assert DAYS_WINDOW.since is not None
    edge = next(s for s in specs if s.status == "running" and DAYS_WINDOW.since <= s.started_at
                < DAYS_WINDOW.since.replace(minute=0) + timedelta(hours=1))
    edge.status = "success"
    load(ch, [edge], version=2)
    recorded = Recorded(ch)
    agree(ch_stats.run_stats(recorded, DAYS_WINDOW, DAYS_NOW), exact(ch, DAYS_WINDOW))
    assert any("s.parent_seq" in sql for sql in recorded.sent)


@pytest.mark.slow
def test_a_rolled_up_v0004_database_upgraded(ch: Connection) -> None:
    """A database rolled up before the daily rollups existed, brought to the newest schema: v0007 (run latency as
    histogram buckets) empties the source stats, so every window reads raw — exact — until the refresher's next
    pass recomputes every unit and then builds every day."""
    load(ch, _days_fleet(2500))
    assert refresh(ch, now=DAYS_NOW).units > 0
    for table in ("rollup_runs_daily", "rollup_steps_daily", "rollup_days"):
        ch.command(f"DROP TABLE {table}")
    ch.command("ALTER TABLE rollup_sources DROP COLUMN step_reach_us")
    ch.command("ALTER TABLE schema_migrations DELETE WHERE number >= 5 SETTINGS mutations_sync = 1")
    assert current_revision(ch) == "v0004_step_rollups"
    assert upgrade(ch)[0] == 5
    want = exact(ch, DAYS_WINDOW)
    got, daily = rolled_daily(ch, DAYS_WINDOW)
    assert not daily and got.latency_exact
    assert dataclasses.replace(got, generated_at=want.generated_at) == want
    units, days = refresh(ch, now=DAYS_NOW)
    assert units > 0 and days == 14
    got, daily = rolled_daily(ch, DAYS_WINDOW)
    assert daily
    agree(got, want)


def test_histogram_buckets_are_the_sql_stores(ch: Connection) -> None:
    """ClickHouse puts every latency in the bucket store/histogram.py puts it in: the bounds themselves,
    their neighbouring doubles, the ends, and random values over the whole range."""
    rnd = random.Random(5)
    values = [0.0, 1e-9, LOWEST_MS, BOUNDS[-1], BOUNDS[-1] * 3, 5e9]
    for b in (*BOUNDS[:50], *rnd.sample(BOUNDS, 300), *BOUNDS[-20:]):
        values += [b, math.nextafter(b, 0.0), math.nextafter(b, math.inf)]
    values += [10 ** rnd.uniform(-3, 9) for _ in range(3000)]
    got = ch.query(f"{with_bounds()} SELECT {bucket_sql('v')} FROM "
                   "(SELECT arrayJoin({values:Array(Float64)}) AS v)", {"values": values}).rows
    assert [int(r[0]) for r in got] == [bucket_of(v) for v in values]


class _Settings:
    """The connection, with ``extra`` settings on every query."""

    def __init__(self, conn: Connection, extra: dict[str, Any]) -> None:
        self.conn = conn
        self.extra = extra
        self.sent: list[tuple[str, Any]] = []

    def query(self, sql: str, params: Any = None, settings: Any = None) -> Result:
        self.sent.append((sql, dict(params or {})))
        return self.conn.query(sql, params, {**(settings or {}), **self.extra})


def test_the_freshness_check_reads_the_runs_projection_and_answers_as_the_runs(ch: Connection) -> None:
    """The whole hours' counts come from the ``unit_stats`` projection (v0008), and equal the rows' own counts after
    new versions, a merge that drops duplicates and a lightweight delete (the projection rebuilt each time)."""
    specs = _fleet(400)
    load(ch, specs)
    refresh(ch, now=NOW)
    load(ch, specs[:60], version=2)  # newer versions of some runs: their units changed
    load(ch, specs[60:90])  # the same rows again: dropped by the next merge
    ch.command("OPTIMIZE TABLE runs FINAL")
    ch.command("DELETE FROM runs WHERE agent_id = 'b' AND started_at < {t:DateTime64(6, 'UTC')}",
               {"t": T0 + timedelta(hours=5)}, {"lightweight_deletes_sync": 2, "mutations_sync": 2})
    window = (micros(T0 - timedelta(minutes=30)), micros(T0 + timedelta(hours=40, minutes=10)))
    hours = (micros(T0), micros(T0 + timedelta(hours=40)))
    answers = []
    for use in (1, 0):
        q = _Settings(ch, {"optimize_use_projections": use})
        answers.append(freshness(q, [], {}, window, hours))
    assert answers[0] == answers[1]
    assert answers[0].clean and answers[0].dirty and answers[0].raw_from is not None
    sql, params = q.sent[0]
    plan = "\n".join(str(r[0]) for r in ch.query(f"EXPLAIN {sql}", params).rows)
    assert "unit_stats" in plan
