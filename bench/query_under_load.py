"""Query latency while ingest runs: steady ingest through a real Ingest API server and four dashboard-like
readers of a real Query API server, on SQLite and PostgreSQL.

Per backend: a fresh database gets ``--history-runs`` over the last 24 hours and ``--live-minutes`` of runs
ending now at the ingest rate (so the live hour already holds what a busy deployment has in it;
bulk-inserted and rolled up, not timed), then both
servers start as subprocesses (``agenttracer serve ingest|query``, default settings: the ingest
process runs the rollup refresher) and for ``--seconds``:

* one ingest driver sends, every 0.2 s, a batch holding the first half of the runs that start now and
  the second half of the runs started two ticks before (runs are in flight across batches, as with an
  SDK), at ``--rate`` steps per second;
* ``--readers`` threads each loop like an open dashboard: ``/v1/stats?since=<24 h ago, floored to the
  minute>`` (the dashboard's default window), ``/v1/agents``, ``/v1/runs?limit=50``, then 0.5 s pause;
  the first WARM_UP_S seconds are not counted.

Prints p50/p95/max per endpoint and the ingest rate reached. Bar (DESIGN.md): ``/v1/stats`` p95 < 150 ms
on both databases under continuous ingest.

    .venv/bin/python bench/query_under_load.py [--backend sqlite,postgresql] [--seconds 30] \\
        [--rate 630] [--readers 4] [--live-minutes 5] [--history-runs 5000] [--pg-url postgresql://…/at_bench]
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.dataset import (
    FAILURE_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
    DatasetSpec,
    GeneratedRun,
    Generator,
    copy_lines,
    sqlite_rows,
    wire_events,
)
from benchlib.harness import (
    fmt,
    free_port,
    machine_description,
    percentile,
    print_table,
    server_env,
    stop_process,
    wait_for_http,
)
from benchlib.ingest_phases import fresh_database, migrate
from benchlib.pg import DEFAULT_BENCH_URL, libpq_dsn

from agenttracer.store.sql.rollup.refresh import refresh
from agenttracer.store.sql.schema.engine import make_engine

TICK_S = 0.2
WARM_UP_S = 8.0
STEPS_PER_RUN = 10.1  # the generator's mean, measured
ENDPOINTS = ("stats", "agents", "runs")


def _runs(n: int, seed: int, end: datetime, span: timedelta) -> list[GeneratedRun]:
    spec = DatasetSpec(runs=max(1, n), seed=seed, span_days=max(span / timedelta(days=1), 1 / 1440), end=end)
    return list(Generator(spec).runs())


def preload(url: str, backend: str, rate: float, live_minutes: float, history_runs: int, live_rows: bool) -> int:
    """``history_runs`` spread over the 24 hours before now, plus ``live_minutes`` of runs at ``rate`` steps/s
    ending now; bulk-inserted (COPY / executemany) and rolled up by the shipped refresher, as a deployment
    that has been ingesting would be. Not timed."""
    now = datetime.now(timezone.utc)
    live = timedelta(minutes=live_minutes)
    history = _runs(history_runs, 11, now - live, timedelta(days=1) - live) if history_runs else []
    dense = _runs(int(rate * live.total_seconds() / STEPS_PER_RUN), 12, now, live) if live_minutes > 0 else []
    # The generator weights starts by hour of day over whole days; spread the dense part evenly instead.
    first_us = int((now - live).timestamp() * 1e6)
    gap = live / timedelta(microseconds=1) / max(len(dense), 1)
    dense = [dataclasses.replace(run, start_us=first_us + int(i * gap)) for i, run in enumerate(dense)]
    runs = [*history, *dense]
    if backend == "sqlite":
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            rows = [sqlite_rows(run) for run in runs]
            conn.executemany(_insert_sql("runs", RUN_COLUMNS), [r for r, _, _ in rows])
            conn.executemany(_insert_sql("steps", STEP_COLUMNS), [s for _, steps, _ in rows for s in steps])
            conn.executemany(_insert_sql("failures", FAILURE_COLUMNS), [f for _, _, f in rows if f is not None])
    else:
        lines = [copy_lines(run) for run in runs]
        with psycopg.connect(libpq_dsn(url)) as conn:
            for table, columns, text in (
                ("runs", RUN_COLUMNS, "".join(r for r, _, _ in lines)),
                ("steps", STEP_COLUMNS, "".join(s for _, s, _ in lines)),
                ("failures", FAILURE_COLUMNS, "".join(f for _, _, f in lines if f is not None)),
            ):
                with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    copy.write(text)
            conn.execute("ANALYZE")
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    refresh(engine, rebuild=True)
    try:  # the live hour's rows too, where the code has them (a deployment that has been running would)
        from agenttracer.store.sql.rollup.live import refresh_live
    except ImportError:
        pass
    else:
        if live_rows:
            refresh_live(engine)
    engine.dispose()
    return sum(len(run.shape.steps) for run in runs)


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


class Load:
    def __init__(self, ingest_url: str, query_url: str, rate: float) -> None:
        self.ingest_url, self.query_url, self.rate = ingest_url, query_url, rate
        self.stop = threading.Event()
        self.latency: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
        self.errors: dict[str, int] = {name: 0 for name in ENDPOINTS}
        self.steps = 0
        self.ingest_seconds = 0.0
        self.ingest_failures = 0

    def drive(self, seed: int, seconds: float) -> None:
        per_tick = self.rate * TICK_S / STEPS_PER_RUN
        # One generator for the whole run (its shapes are built once); each run is moved to start now.
        far = datetime.now(timezone.utc) + timedelta(days=1)
        source = iter(_runs(int(self.rate * (seconds + 60) / STEPS_PER_RUN), seed, far, timedelta(days=1)))
        pending: list[list[dict[str, Any]]] = []  # second halves, sent two ticks later
        owed = 0.0
        tick = 0
        t0 = time.monotonic()
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                now = datetime.now(timezone.utc)
                owed += per_tick
                n = int(owed)
                owed -= n
                fresh = [next(source) for _ in range(n)]
                events: list[dict[str, Any]] = []
                halves = []
                for run in fresh:
                    evs = wire_events(run, int(now.timestamp() * 1e6) - run.start_us)
                    cut = max(1, len(evs) // 2)
                    events += evs[:cut]
                    halves.append(evs[cut:])
                    self.steps += len(run.shape.steps)
                pending.append([e for half in halves for e in half])
                if len(pending) > 2:
                    events += pending.pop(0)
                if events:
                    r = client.post(f"{self.ingest_url}/v1/ingest", content=orjson.dumps({"events": events}),
                                    headers={"content-type": "application/json"})
                    self.ingest_failures += r.status_code != 200
                tick += 1
                delay = t0 + tick * TICK_S - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        self.ingest_seconds = time.monotonic() - t0

    def read(self) -> None:
        with httpx.Client(base_url=self.query_url, timeout=60) as client:
            while not self.stop.is_set():
                since = (datetime.now(timezone.utc) - timedelta(hours=24)).replace(second=0, microsecond=0)
                for name, path, params in (
                    ("stats", "/v1/stats", {"since": since.isoformat().replace("+00:00", "Z")}),
                    ("agents", "/v1/agents", {}),
                    ("runs", "/v1/runs", {"limit": 50}),
                ):
                    t = time.perf_counter()
                    r = client.get(path, params=params)
                    took = (time.perf_counter() - t) * 1000
                    if r.status_code == 200:
                        self.latency[name].append(took)
                    else:
                        self.errors[name] += 1
                self.stop.wait(0.5)


def one_backend(backend: str, pg_url: str, args: argparse.Namespace) -> list[list[str]]:
    with fresh_database(backend, pg_url) as url:
        migrate(url)
        t = time.perf_counter()
        preloaded = preload(url, backend, args.rate, args.live_minutes, args.history_runs, not args.live_off)
        print(f"  {backend}: preloaded and rolled up {preloaded:,} steps in "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
        procs: list[tuple[str, int, subprocess.Popen[bytes]]] = []
        try:
            for part in ("ingest", "query"):
                port = free_port()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "agenttracer", "serve", part, "--port", str(port), "--database-url", url],
                    env={**server_env(), "AGENTTRACER_LOG_LEVEL": "warning",
                         **({"AGENTTRACER_ROLLUP_LIVE_INTERVAL_SECONDS": "0"} if args.live_off else {})},
                )
                procs.append((part, port, proc))
                wait_for_http(f"http://127.0.0.1:{port}/health", 30, proc)
            ingest_url, query_url = (f"http://127.0.0.1:{port}" for _, port, _ in procs)
            load = Load(ingest_url, query_url, args.rate)
            threads = [threading.Thread(target=load.drive, args=(7, args.seconds))]
            threads += [threading.Thread(target=load.read) for _ in range(args.readers)]
            for th in threads:
                th.start()
            time.sleep(WARM_UP_S)  # the servers' first refresher passes, connection pools
            for values in load.latency.values():
                values.clear()
            time.sleep(args.seconds)
            load.stop.set()
            for th in threads:
                th.join(120)
        finally:
            for _, _, proc in procs:
                stop_process(proc)
    rows = []
    for name in ENDPOINTS:
        values = sorted(load.latency[name])
        rows.append([backend, f"/v1/{name}", str(len(values)), fmt(percentile(values, 50)),
                     fmt(percentile(values, 95)), fmt(values[-1] if values else float("nan")),
                     str(load.errors[name]),
                     f"{load.steps / load.ingest_seconds:,.0f}" if name == "stats" else "",
                     str(load.ingest_failures) if name == "stats" else ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=630.0, help="steps per second sent to the Ingest API")
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--live-minutes", type=float, default=5.0,
                        help="minutes of runs at --rate before now, preloaded")
    parser.add_argument("--history-runs", type=int, default=5_000, help="runs over the 24 h before, preloaded")
    parser.add_argument("--pg-url", default=DEFAULT_BENCH_URL)
    parser.add_argument("--live-off", action="store_true",
                        help="without the live refresher (AGENTTRACER_ROLLUP_LIVE_INTERVAL_SECONDS=0): the newest "
                        "hour read raw, as before it existed")
    args = parser.parse_args()
    print(machine_description())
    print(f"minute of the hour at start: {datetime.now(timezone.utc).minute}")
    rows = []
    for backend in args.backend.split(","):
        rows += one_backend(backend, args.pg_url, args)
        if args.live_off:
            for row in rows[-3:]:
                row[0] += " (live off)"
    print_table(
        f"Query latency under steady ingest ({args.rate:.0f} steps/s target, {args.readers} readers, "
        f"{args.seconds:.0f} s; preloaded {args.history_runs:,} runs over 24 h + {args.live_minutes:.0f} min at "
        "the rate), ms",
        ["backend", "endpoint", "n", "p50", "p95", "max", "errors", "ingest steps/s", "ingest non-200"],
        rows,
    )


if __name__ == "__main__":
    main()
