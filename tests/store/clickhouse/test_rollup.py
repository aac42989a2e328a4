"""ClickHouse rollups: stats read from them give the exact path's counts and percentiles within the
sketch's accuracy, and stay exact while runs change, move and disappear after they were rolled up."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from agenttracer.store.clickhouse.connection import Connection, connect
from agenttracer.store.clickhouse.read import stats as ch_stats
from agenttracer.store.clickhouse.read import stats_rollup
from agenttracer.store.clickhouse.rollup import RELATIVE_ACCURACY, refresh
from agenttracer.store.filters import RunFilters
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
    """Equal but for the percentiles (within the sketch's accuracy) and the flag saying so."""
    assert not rolled.latency_exact and want.latency_exact
    a, b = dataclasses.asdict(rolled), dataclasses.asdict(want)
    for side in (a, b):
        for key in ("latency_exact", "generated_at", "run_latency_ms"):
            side.pop(key)
        for point in side["timeline"]["points"]:
            point.pop("run_latency_ms")
    assert _close(a, b)
    for got, exp in ((rolled.run_latency_ms, want.run_latency_ms),
                     *((p.run_latency_ms, q.run_latency_ms) for p, q in
                       zip(rolled.timeline.points, want.timeline.points, strict=True))):
        for q in ("p50", "p95", "p99"):
            x, y = getattr(got, q), getattr(exp, q)
            assert (x is None) == (y is None)
            if y is not None:
                # The sketch is within its relative accuracy of a sample value next to the exact one.
                assert x == pytest.approx(y, rel=3 * RELATIVE_ACCURACY, abs=1.0)


def _close(a: Any, b: Any) -> bool:
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
    assert refresh(ch, now=NOW) > 0
    for filters in (WINDOW, dataclasses.replace(WINDOW, agent_id="a"),
                    dataclasses.replace(WINDOW, agent_version="2", environment="prod")):
        rolled = ch_stats.run_stats(ch, filters, NOW)
        if rolled.total_runs > stats_rollup.EXACT_MAX_RUNS:
            agree(rolled, exact(ch, filters))
    assert refresh(ch, now=NOW) == 0  # nothing changed: nothing recomputed

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
    assert refresh(ch, now=NOW) > 0
    agree(ch_stats.run_stats(ch, WINDOW, NOW), exact(ch, WINDOW))


def test_small_answers_stay_exact(ch: Connection) -> None:
    load(ch, _fleet(300))
    refresh(ch, now=NOW)
    assert ch_stats.run_stats(ch, WINDOW, NOW).latency_exact
    assert ch_stats.run_stats(ch, dataclasses.replace(WINDOW, status="failure"), NOW).latency_exact
