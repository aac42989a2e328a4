"""The ClickHouse reads answer what the SQL store answers on the same runs (runs list and its pages, id
prefixes, run detail, agents, stats, compare), and read each run and step by its newest stored version.

The same runs go into a SQLite or PostgreSQL database (``rundata.insert_runs``) and into a chdb one
(``rundata_clickhouse``); every read is then made on both and the answers compared whole. Percentiles
are compared with a relative tolerance of 1e-9: both compute ``percentile_cont``'s interpolation, but
ClickHouse may add in another order.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.clickhouse.connection import Connection, connect
from agenttracer.store.clickhouse.read import compare as ch_compare
from agenttracer.store.clickhouse.read import newest_runs
from agenttracer.store.clickhouse.read import runs as ch_runs
from agenttracer.store.clickhouse.read import stats as ch_stats
from agenttracer.store.clickhouse.read import stats_rollup as ch_stats_rollup
from agenttracer.store.clickhouse.read import steps as ch_steps
from agenttracer.store.clickhouse.rollup import refresh as ch_refresh
from agenttracer.store.sql.read import compare as sql_compare
from agenttracer.store.sql.read import runs as sql_runs
from agenttracer.store.sql.read import stats as sql_stats
from agenttracer.store.sql.read import stats_rollup as sql_stats_rollup
from agenttracer.store.sql.read import steps as sql_steps
from agenttracer.store.sql.read.filters import RunFilters
from agenttracer.store.sql.rollup.refresh import refresh as sql_refresh
from tests.support.rundata import T0, RunSpec, StepSpec, insert_runs, sample_runs
from tests.support.rundata_clickhouse import insert_statement, run_rows

NOW = T0 + timedelta(days=1)


def fleet(n: int = 160, seed: int = 7) -> list[RunSpec]:
    """Two versions of one agent with varied outcomes, retries, nested and parallel steps."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        steps = [
            StepSpec(1, "plan", "plan", 0, rnd.randint(1, 20)),
            StepSpec(2, "other", "loop", 25, 80),
            StepSpec(3, "llm", "draft", 30, rnd.randint(5, 40), parent_seq=2),
            StepSpec(4, "tool", "search", 35, rnd.randint(5, 60), parent_seq=2,
                     status=rnd.choice(["ok", "ok", "error"])),
            StepSpec(5, "respond", "answer", 110, rnd.randint(1, 9)),
        ]
        if rnd.random() < 0.3:
            steps.append(StepSpec(6, "tool", "search", 120, 10, attempt=2, retry_of_seq=4))
        status = rnd.choice(["success", "success", "failure", "partial", "running"])
        failure = {"failure_type": "tool", "failure_code": rnd.choice(["timeout", "http_error"]),
                   "step_seq": 4} if status == "failure" else None
        out.append(RunSpec("fleet-agent", rnd.choice(["1.0", "2.0"]), rnd.choice(["prod", "dev"]),
                           T0 + timedelta(minutes=7 * i), status, steps, failure=failure))
    return out


@pytest.fixture
def ch(chdb_url: str) -> Iterator[Connection]:
    conn = connect(chdb_url)
    yield conn
    conn.close()


def load(ch: Connection, specs: list[RunSpec], **kwargs: Any) -> None:
    runs, steps = run_rows(specs, **kwargs)
    ch.command(insert_statement("runs", runs))
    if steps:
        ch.command(insert_statement("steps", steps))


@pytest.fixture
def both(engine: sa.Engine, ch: Connection) -> tuple[sa.Engine, Connection]:
    specs = [*sample_runs(), *fleet()]
    insert_runs(engine, specs)
    insert_runs(ch, specs)  # the same loader, its ClickHouse branch
    return engine, ch


def same(a: Any, b: Any) -> None:
    """Equal answers, floats within 1e-9 relative (dataclasses compared field by field)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        a, b = dataclasses.asdict(a), dataclasses.asdict(b)  # type: ignore[arg-type]
    assert _norm(a) == _norm(b)


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9, abs=1e-9)
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items() if k != "generated_at"}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


FILTERS = [
    RunFilters(),
    RunFilters(agent_id="fleet-agent"),
    RunFilters(agent_id="fleet-agent", agent_version="2.0", environment="prod"),
    RunFilters(status="failure"),
    RunFilters(failure_type="tool", failure_code="timeout"),
    RunFilters(step_name="kb_search"),
    RunFilters(since=T0 + timedelta(hours=3), until=T0 + timedelta(hours=9)),
    RunFilters(projects=("default",)),
    RunFilters(projects=("elsewhere",)),
]


@pytest.mark.slow
def test_runs_list_pages_match(both: tuple[sa.Engine, Connection]) -> None:
    engine, ch = both
    for filters in FILTERS:
        pages: dict[str, list[list[dict[str, Any]]]] = {"sql": [], "ch": []}
        for name in pages:
            cursor = None
            while True:
                if name == "sql":
                    with engine.connect() as conn:
                        items, cursor = sql_runs.list_runs(conn, filters, limit=25, cursor=cursor)
                else:
                    items, cursor = ch_runs.list_runs(ch, filters, limit=25, cursor=cursor)
                pages[name].append(items)
                if cursor is None:
                    break
        assert len(pages["ch"]) == len(pages["sql"]), filters
        same(pages["ch"], [[{k: r[k] for k in ch_runs.RUN_COLUMNS} for r in page] for page in pages["sql"]])


@pytest.mark.slow
def test_detail_prefix_agents_match(both: tuple[sa.Engine, Connection]) -> None:
    engine, ch = both
    with engine.connect() as conn:
        ids = [r["run_id"] for r in sql_runs.list_runs(conn, RunFilters(), limit=200)[0]]
        for run_id in ids[::9]:
            for after in (0, 2):
                want = sql_runs.get_run(conn, run_id, steps_after=after, steps_limit=2)
                got = ch_runs.get_run(ch, run_id, steps_after=after, steps_limit=2)
                assert want is not None and got is not None
                want["run"] = {k: want["run"][k] for k in ch_runs.RUN_COLUMNS}
                want["steps"] = [{k: s[k] for k in ch_runs.STEP_COLUMNS} for s in want["steps"]]
                same(got, want)
        assert ch_runs.get_run(ch, ids[0], steps_limit=5, projects=("elsewhere",)) is None
        for prefix in ("a", "4", ids[3][:6]):
            assert ch_runs.runs_with_prefix(ch, prefix, 50) == sql_runs.runs_with_prefix(conn, prefix, 50)
        same(ch_runs.list_agents(ch), sql_runs.list_agents(conn))
        assert ch_runs.list_agents(ch, ("elsewhere",)) == []


@pytest.mark.slow
def test_stats_and_compare_match(both: tuple[sa.Engine, Connection]) -> None:
    engine, ch = both
    for filters in FILTERS:
        with engine.connect() as conn:
            want = sql_stats.run_stats(conn, filters, NOW)
        got = ch_stats.run_stats(ch, filters, NOW)
        same(got, want)
        assert bool(got.step_types and got.timeline.points) == bool(want.total_runs), filters
    fleet_stats = ch_stats.run_stats(ch, FILTERS[1], NOW)
    shares = [t.share_of_run_time or 0.0 for t in fleet_stats.step_types]
    assert sum(shares) + (fleet_stats.run_time.untraced_share or 0.0) == pytest.approx(1.0)
    for environment in (None, "prod"):
        args: dict[str, Any] = {"environment": environment, "since": T0, "until": NOW}
        with engine.connect() as conn:
            compared = sql_compare.compare_versions(conn, "fleet-agent", "1.0", "2.0", **args)
        got_cmp = ch_compare.compare_versions(ch, "fleet-agent", "1.0", "2.0", **args)
        same(got_cmp, compared)
        assert got_cmp.base.runs > 20 and got_cmp.step_types and got_cmp.shapes


def _differs(a: Any, b: Any, at: str = "") -> str | None:
    """Where two stores' rollup answers differ (None: nowhere): floats within 1e-9, the percentiles too — run and
    step latency are read from the same histogram's bucket counts on both, the timeline's per bucket included."""
    if isinstance(a, float) and isinstance(b, float):
        return None if a == pytest.approx(b, rel=1e-9, abs=1e-9) else f"{at}: {a} != {b}"
    if isinstance(a, dict) and isinstance(b, dict):
        keys = a.keys() - {"generated_at"}
        if keys != b.keys() - {"generated_at"}:
            return f"{at}: keys {sorted(keys ^ b.keys())}"
        return next((d for k in keys if (d := _differs(a[k], b[k], f"{at}.{k}")) is not None), None)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{at}: {len(a)} != {len(b)} items"
        return next((d for i, (x, y) in enumerate(zip(a, b, strict=True))
                     if (d := _differs(x, y, f"{at}[{i}]")) is not None), None)
    return None if a == b else f"{at}: {a!r} != {b!r}"


@pytest.mark.slow
def test_rolled_up_stats_and_step_breakdown_match(engine: sa.Engine, ch: Connection,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Past EXACT_MAX_RUNS both stores answer from their rollups: the same counts, sums and self time per
    step, every matching run (no sample, however many run), percentiles within the sketches' accuracy."""
    specs = fleet(2_600, seed=3)
    now = specs[-1].started_at + timedelta(days=1)
    insert_runs(engine, specs)
    insert_runs(ch, specs)
    sql_refresh(engine, now=now)
    assert ch_refresh(ch, now=now).units > 0
    # A sample smaller than the windows: the exact paths would sample, the rollup paths must not.
    for module in (ch_steps, sql_steps):
        monkeypatch.setattr(module, "STEP_SAMPLE_RUNS", 1_000)
    assert ch_stats_rollup.EXACT_MAX_RUNS == sql_stats_rollup.EXACT_MAX_RUNS < 2_400
    rolled = 0
    edges = RunFilters(since=T0 + timedelta(minutes=37), until=specs[-1].started_at - timedelta(minutes=23))
    for filters in (RunFilters(), edges, dataclasses.replace(edges, agent_id="fleet-agent"),
                    dataclasses.replace(edges, agent_id="fleet-agent", agent_version="2.0", environment="prod")):
        with engine.connect() as conn:
            want = sql_stats.run_stats(conn, filters, now)
        got = ch_stats.run_stats(ch, filters, now)
        assert got.latency_exact == want.latency_exact == (got.total_runs <= ch_stats_rollup.EXACT_MAX_RUNS)
        rolled += not got.latency_exact
        assert not got.steps_sampled and got.step_sample_runs == got.total_runs, filters
        assert _differs(dataclasses.asdict(got), dataclasses.asdict(want)) is None, filters
    assert rolled == 3
    # Runs after what was rolled up are read raw, their self time walked by the reader, until the next refresh.
    late = fleet(40, seed=5)
    for spec in late:
        spec.started_at += now - T0 + timedelta(minutes=30)
    later = now + timedelta(days=1)
    insert_runs(engine, late)
    insert_runs(ch, late)
    for refreshed in (False, True):
        if refreshed:
            sql_refresh(engine, now=later)
            assert ch_refresh(ch, now=later).units > 0
        with engine.connect() as conn:
            want = sql_stats.run_stats(conn, RunFilters(), later)
        got = ch_stats.run_stats(ch, RunFilters(), later)
        assert got.total_runs == 2_640 and not got.latency_exact
        assert _differs(dataclasses.asdict(got), dataclasses.asdict(want)) is None


# --- Versions: what ClickHouse keeps until merges, and the reads must see through.


def _one(status: str, started: datetime = T0, **kwargs: Any) -> RunSpec:
    return RunSpec("agent", "1", "prod", started, status, [StepSpec(1, "tool", "call", 0, 10)], **kwargs)


def test_a_run_is_read_as_its_newest_version(ch: Connection) -> None:
    spec = _one("running")
    load(ch, [spec], version=1)
    spec.status = "success"
    load(ch, [spec], version=2)
    items, _ = ch_runs.list_runs(ch, RunFilters(), limit=10)
    assert [(r["run_id"], r["status"]) for r in items] == [(spec.run_id, "success")]
    assert ch_runs.list_runs(ch, RunFilters(status="running"), limit=10)[0] == []
    stats = ch_stats.run_stats(ch, RunFilters(), NOW)
    assert (stats.total_runs, stats.status_counts["success"], stats.status_counts["running"]) == (1, 1, 0)
    detail = ch_runs.get_run(ch, spec.run_id, steps_limit=10)
    assert detail is not None and detail["run"]["status"] == "success" and len(detail["steps"]) == 1


def test_a_moved_start_counts_where_the_newest_version_puts_it(ch: Connection) -> None:
    spec = _one("success", T0 + timedelta(hours=5))
    load(ch, [spec], version=1)
    # A late run_start dates the run earlier: the writer tombstones the old sorting key, then stores the
    # run under the new one (store/clickhouse/write).
    old_key, _ = run_rows([spec], version=2)
    old_key[0]["is_deleted"] = 1
    ch.command(insert_statement("runs", old_key))
    spec.started_at = T0
    load(ch, [spec], version=3)
    late = RunFilters(since=T0 + timedelta(hours=4))
    assert ch_runs.list_runs(ch, late, limit=10)[0] == []
    assert ch_stats.run_stats(ch, late, NOW).total_runs == 0
    early = RunFilters(since=T0, until=T0 + timedelta(hours=1))
    assert [r["started_at"] for r in ch_runs.list_runs(ch, early, limit=10)[0]] == [T0]
    assert ch_stats.run_stats(ch, early, NOW).total_runs == 1


def test_a_tombstone_hides_the_run(ch: Connection) -> None:
    gone, kept = _one("success"), _one("failure", T0 + timedelta(minutes=1))
    load(ch, [gone, kept])
    rows, _ = run_rows([gone], version=2)
    rows[0]["is_deleted"] = 1
    ch.command(insert_statement("runs", rows))
    assert [r["run_id"] for r in ch_runs.list_runs(ch, RunFilters(), limit=10)[0]] == [kept.run_id]
    assert ch_runs.get_run(ch, gone.run_id, steps_limit=10) is None
    assert ch_runs.runs_with_prefix(ch, gone.run_id, 10) == []
    assert [a["run_count"] for a in ch_runs.list_agents(ch)] == [1]


def test_pages_stay_whole_when_runs_have_many_versions(ch: Connection) -> None:
    specs = [_one("running", T0 + timedelta(seconds=i)) for i in range(300)]
    for version in (1, 2, 3):
        if version == 3:
            for s in specs:
                s.status = "success"
        load(ch, specs, version=version)
    seen: list[str] = []
    cursor = None
    while True:
        items, cursor = ch_runs.list_runs(ch, RunFilters(status="success"), limit=40, cursor=cursor)
        seen.extend(r["run_id"] for r in items)
        if cursor is None:
            break
    assert seen == [s.run_id for s in reversed(specs)]


def test_a_page_reaches_past_runs_whose_older_versions_match(ch: Connection) -> None:
    # The newest 190 runs were failures and are now successes; only the 10 oldest still are failures.
    # A page of failures has to look past every run whose older versions match, however many they are.
    specs = [_one("failure", T0 + timedelta(seconds=i)) for i in range(200)]
    load(ch, specs, version=1)
    load(ch, specs, version=2)
    for s in specs[10:]:
        s.status = "success"
    load(ch, specs[10:], version=3)
    seen: list[str] = []
    cursor = None
    while True:
        items, cursor = ch_runs.list_runs(ch, RunFilters(status="failure"), limit=4, cursor=cursor)
        assert items or cursor is None
        seen.extend(r["run_id"] for r in items)
        if cursor is None:
            break
    assert seen == [s.run_id for s in reversed(specs[:10])]


def test_a_sparse_filter_over_a_long_table_finds_every_page(ch: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    # 2,000 runs an hour apart, one in a hundred a failure. With no margin, the first stretch of time
    # searched for a page's bound holds as many rows as the bound needs if spread evenly: too few failures,
    # so it is widened until it holds enough (or the whole table); every page is still the newest runs
    # after the cursor.
    monkeypatch.setattr(newest_runs, "SPREAD_MARGIN", 1)
    specs = [_one("failure" if i % 100 == 7 else "success", T0 + timedelta(hours=i)) for i in range(2000)]
    load(ch, specs)
    for filters, want in ((RunFilters(status="failure"), [s for s in specs if s.status == "failure"]),
                          (RunFilters(), specs)):
        seen: list[str] = []
        cursor = None
        while len(seen) < 60:
            items, cursor = ch_runs.list_runs(ch, filters, limit=3, cursor=cursor)
            seen.extend(r["run_id"] for r in items)
            if cursor is None:
                break
        assert seen == [s.run_id for s in reversed(want)][:len(seen)] and len(seen) == min(60, len(want))


def test_projects_do_not_see_each_other(ch: Connection) -> None:
    mine, theirs = _one("success"), _one("failure", T0 + timedelta(minutes=1))
    load(ch, [mine], project="mine")
    load(ch, [theirs], project="theirs")
    scope = RunFilters(projects=("mine",))
    assert [r["run_id"] for r in ch_runs.list_runs(ch, scope, limit=10)[0]] == [mine.run_id]
    assert ch_runs.get_run(ch, theirs.run_id, steps_limit=10, projects=("mine",)) is None
    assert ch_runs.runs_with_prefix(ch, theirs.run_id[:8], 10, ("mine",)) == []
    assert ch_stats.run_stats(ch, scope, NOW).status_counts["failure"] == 0
    assert ch_runs.list_agents(ch, ("mine",))[0]["run_count"] == 1


def test_empty_store_answers(ch: Connection) -> None:
    assert ch_runs.list_runs(ch, RunFilters(), limit=10) == ([], None)
    stats = ch_stats.run_stats(ch, RunFilters(), NOW)
    assert stats.total_runs == 0 and stats.run_latency_ms.p50 is None and stats.timeline.points == []
    cmp = ch_compare.compare_versions(ch, "agent", "1", "2")
    assert cmp.base.runs == 0 and cmp.step_types == []
    ch_runs.ping(ch)


