"""What latency attribution by self time costs: the rollup refresher and ``/v1/stats`` on nested runs.

Self time is a sweep over a whole run's step intervals (docs/analytics.md, "Latency attribution"). The
refreshers store it once per finished run (``store/sql/rollup/attribution.py``); readers sum the stored
rows and sweep only runs not attributed yet. This script loads the same synthetic runs into a fresh
database — ~10 steps per run, half of the runs nested (an agent step around the others, a grandchild,
two parallel tool calls), the other half flat — and times, in this process:

1. ``refresh(rebuild=True)``, first: rolling up every hour, which also attributes every run (the backfill
   after migration 0009, or any first build); then again: the rollups alone, self time already stored;
2. ``run_stats`` over the whole range with mid-hour edges, from the rollups (``stats: rolled``);
3. ``run_stats`` of a 2,000-run window on the exact path (``stats: exact``).

It only uses store functions that existed before self time, so the same file measures the previous
code side by side: run it once per checkout (``PYTHONPATH=<old checkout>/src``) on a database of its own.

    .venv/bin/python bench/self_time.py --backend sqlite --runs 20000
    PYTHONPATH=/path/to/old/src .venv/bin/python bench/self_time.py --backend sqlite --runs 20000
    .venv/bin/python bench/self_time.py --backend postgresql --pg-url postgresql://postgres@127.0.0.1/at_x
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import agenttracer
from agenttracer.store.filters import RunFilters
from agenttracer.store.sql.read import stats_rollup
from agenttracer.store.sql.read.stats import run_stats
from agenttracer.store.sql.rollup.refresh import refresh
from agenttracer.store.sql.schema import tables
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
HOURS = 48
MS = timedelta(milliseconds=1)


def _steps(rng: random.Random, run_id: str, start: datetime, nested: bool) -> tuple[list[dict[str, Any]], float]:
    """One run's steps (nested: an agent step around the rest, a grandchild, two parallel tools)."""
    out: list[dict[str, Any]] = []
    seq = 0

    def add(step_type: str, name: str, a: float, b: float, parent: int | None) -> int:
        nonlocal seq
        seq += 1
        out.append({"run_id": run_id, "seq": seq, "step_type": step_type, "name": name, "status": "ok",
                    "started_at": start + a * MS, "ended_at": start + b * MS, "latency_ms": b - a, "attempt": 1,
                    "retry_of_seq": None, "parent_seq": parent, "error_class": None, "failure_code": None,
                    "meta": {}, "meta_removed": 0})
        return seq

    t = 0.0
    root = add("other", "agent", 0.0, 0.0, None) if nested else None
    for i in range(4):
        lat = rng.uniform(50, 400)
        turn = add("llm", f"model_{i % 2}", t, t + lat, root)
        if nested and i == 1:
            add("retrieval", "kb", t + lat * 0.2, t + lat * 0.6, turn)
        t += lat + 5
        a, b = rng.uniform(20, 200), rng.uniform(20, 200)
        add("tool", "search", t, t + a, root)
        add("tool", "lookup", t + (a * 0.3 if nested else a + 1), t + (a * 0.3 if nested else a + 1) + b, root)
        t += max(a, a * 0.3 + b if nested else a + 1 + b) + 5
    end = t + 10
    if nested:
        out[0]["ended_at"] = start + end * MS
        out[0]["latency_ms"] = end
    return out, end


def load(engine: sa.Engine, runs: int, seed: int) -> None:
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    run_rows: list[dict[str, Any]] = []
    step_rows: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(tables.runs.insert(), run_rows)
            conn.execute(tables.steps.insert(), step_rows)
        run_rows.clear()
        step_rows.clear()

    for i in range(runs):
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        start = START + timedelta(seconds=HOURS * 3600 * i / runs)
        steps, duration = _steps(rng, run_id, start, nested=i % 2 == 0)
        run_rows.append({
            "run_id": run_id, "agent_id": f"agent-{i % 3}", "agent_version": "1", "environment": "prod",
            "status": "success", "started_at": start, "ended_at": start + duration * MS, "duration_ms": duration,
            "step_count": len(steps), "error_step_count": 0, "retry_count": 0, "meta": {}, "meta_removed": 0,
            "ingested_at": now, "updated_at": now,
        })
        step_rows.extend(steps)
        if len(run_rows) >= 2_000:
            flush()
    if run_rows:
        flush()


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/at_bench")
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}" if args.backend == "sqlite" else args.pg_url
        engine = make_engine(url)
        if args.backend == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                conn.execute(sa.text("CREATE SCHEMA public"))
        upgrade(engine)
        t0 = time.perf_counter()
        load(engine, args.runs, args.seed)
        with engine.connect() as conn:
            steps = conn.execute(sa.select(sa.func.count()).select_from(tables.steps)).scalar()
        print(f"code: {Path(agenttracer.__file__).parent}")
        print(f"{args.backend}: {args.runs} runs, {steps} steps loaded in {time.perf_counter() - t0:.1f} s")
        now = START + timedelta(hours=HOURS + 3)
        first = timed(lambda: refresh(engine, now=now, rebuild=True), 1)
        rebuild = timed(lambda: refresh(engine, now=now, rebuild=True), max(1, args.repeat // 3))
        mid = RunFilters(since=START + timedelta(minutes=17), until=START + timedelta(hours=HOURS - 1, minutes=31))
        small_hours = HOURS * 2000 / args.runs  # ~2,000 runs
        small = RunFilters(since=START + timedelta(hours=10), until=START + timedelta(hours=10 + small_hours))

        def stats(filters: RunFilters) -> None:
            with engine.connect() as conn:
                run_stats(conn, filters, now=now)

        rolled = timed(lambda: stats(mid), args.repeat)
        exact_cut = stats_rollup.EXACT_MAX_RUNS
        stats_rollup.EXACT_MAX_RUNS = 10**9  # every window takes the exact path
        exact = timed(lambda: stats(small), args.repeat)
        stats_rollup.EXACT_MAX_RUNS = exact_cut
        for name, values in (("refresh --all, first", first), ("refresh --all, again", rebuild),
                             ("stats: rolled, mid-hour edges", rolled),
                             ("stats: exact, 2,000 runs", exact)):
            print(f"  {name:32s} median {statistics.median(values):9.1f} ms   (min {min(values):.1f}, n={len(values)})")
        engine.dispose()


if __name__ == "__main__":
    main()
