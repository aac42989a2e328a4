"""Query latency at scale: the Query API over real HTTP against 1 M runs / 10 M steps on PostgreSQL.

1. Loads the data set (benchlib/dataset.py: six agents, versions, environments, statuses, failures,
   retries, ~10 steps per run over 30 days) with COPY into the migrated schema — or reuses it when a
   previous invocation already loaded the same size at the same schema revision (if only the revision
   moved on, the new migrations are applied to the loaded data). 1 M runs take ~2 minutes to load.
2. Starts the real Query API (``agenttracer.server.query.create_app`` under one uvicorn worker, on a
   read-only engine, as ``agenttracer serve query`` runs it) on a free loopback port.
3. Times each request client-side (full HTTP round trip including JSON encoding) for: the runs list
   unfiltered and filtered, first page and a deep cursor; run detail of random runs; stats over the
   last 24 h and the full 30 days; compare of two versions; agents. Time windows are anchored at the
   data set's end, so a reused data set answers the same questions.
4. Prints p50 and p95 per request kind (min / median / max of the p95 over ``--repeat`` rounds).

The same at 100,000 runs on SQLite (a file under ``--data-dir``). Bar (DESIGN.md): every query endpoint
p95 < 50 ms at 1 M runs / 10 M steps on PostgreSQL.

    .venv/bin/python bench/query_latency.py                        # PostgreSQL 1 M runs + SQLite 100 k
    .venv/bin/python bench/query_latency.py --backend postgresql --pg-runs 100000 --repeat 1
    .venv/bin/python bench/query_latency.py --drop                 # remove the loaded data sets
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import sqlalchemy as sa
from benchlib.dataset import DatasetSpec
from benchlib.harness import (
    fmt,
    free_port,
    machine_description,
    percentile,
    print_table,
    py_spy_record,
    server_env,
    stop_process,
    summarize,
    wait_for_http,
)
from benchlib.loader import Loaded, drop_postgres, load_postgres, load_sqlite
from benchlib.pg import DEFAULT_BENCH_URL, server_settings

from agenttracer.store.sql.schema.engine import make_engine

BAR_MS = 50.0
CASE_BUDGET_S = 40.0  # per case and round: slow cases get fewer samples (at least MIN_SAMPLES)
MIN_SAMPLES = 3
SLOW_S = 2.0  # a request slower than this in warm-up is measured MIN_SAMPLES times only
DEFAULT_DATA_DIR = Path(os.environ.get("AGENTTRACER_BENCH_DATA", "/tmp/agenttracer-bench"))


@dataclass
class Case:
    name: str
    bar: bool  # part of the DESIGN.md bar (every endpoint)
    request: Callable[[httpx.Client], httpx.Response]


def _iso(dt: Any) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def deep_cursor(client: httpx.Client, params: dict[str, Any], depth: int) -> str | None:
    """Walk ``depth`` runs into the list (pages of 500, untimed) and return the cursor found there."""
    cursor = None
    walked = 0
    while walked < depth:
        page_params = {**params, "limit": min(500, depth - walked)}
        if cursor:
            page_params["cursor"] = cursor
        resp = client.get("/v1/runs", params=page_params)
        resp.raise_for_status()
        body = resp.json()
        walked += len(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            return None
    return cursor


def build_cases(client: httpx.Client, url: str, spec: DatasetSpec, seed: int) -> list[Case]:
    end = spec.end
    day = {"since": _iso(end - timedelta(days=1)), "until": _iso(end)}
    month = {"since": _iso(end - timedelta(days=spec.span_days)), "until": _iso(end)}
    # The dashboard's "last 24 h" starts and ends mid-hour: partial hours at both edges are read raw.
    shifted = end - timedelta(minutes=37)
    day_mid_hour = {"since": _iso(shifted - timedelta(days=1)), "until": _iso(shifted)}
    engine = make_engine(url, readonly=True, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        # random runs for the detail requests: a different run each time, like users clicking around
        sample = [r[0] for r in conn.execute(sa.text(
            "SELECT run_id FROM runs WHERE run_id >= :lo ORDER BY run_id LIMIT 400"
        ), {"lo": f"{random.Random(seed).getrandbits(32):08x}"})]
    engine.dispose()
    rng = random.Random(seed)
    rng.shuffle(sample)
    detail_ids = iter(sample * 10)

    def get(path: str, params: dict[str, Any] | None = None) -> Callable[[httpx.Client], httpx.Response]:
        return lambda c: c.get(path, params=params)

    deep_all = deep_cursor(client, {}, 10_000)
    deep_failed = deep_cursor(client, {"status": "failure"}, 2_000)
    cases = [
        Case("runs: first page (50)", True, get("/v1/runs")),
        Case("runs: agent_id", True, get("/v1/runs", {"agent_id": "research-agent"})),
        Case("runs: agent+version+env", True,
             get("/v1/runs", {"agent_id": "support-bot", "agent_version": "2.6.0", "environment": "production"})),
        Case("runs: status=failure", True, get("/v1/runs", {"status": "failure"})),
        Case("runs: failure tool/timeout", True, get("/v1/runs", {"failure_type": "tool", "failure_code": "timeout"})),
        Case("runs: step_name=code_exec", True, get("/v1/runs", {"step_name": "code_exec"})),
        Case("runs: last 24 h", True, get("/v1/runs", day)),
        Case("runs: rare env+agent", True,
             get("/v1/runs", {"agent_id": "triage-agent", "environment": "development", "status": "partial"})),
    ]
    if deep_all:
        cases.append(Case("runs: deep cursor (10,000)", True, get("/v1/runs", {"cursor": deep_all})))
    if deep_failed:
        cases.append(Case("runs: failure, deep (2,000)", True,
                          get("/v1/runs", {"status": "failure", "cursor": deep_failed})))
    cases += [
        Case("run detail (random runs)", True, lambda c: c.get(f"/v1/runs/{next(detail_ids)}")),
        Case("stats: 24 h", True, get("/v1/stats", day)),
        Case("stats: 24 h, mid-hour edges", True, get("/v1/stats", day_mid_hour)),
        Case("stats: 30 days", True, get("/v1/stats", month)),
        Case("stats: 30 days, one agent", True, get("/v1/stats", {**month, "agent_id": "support-bot"})),
        Case("compare: 2 versions, 30 days", True,
             get("/v1/compare", {**month, "agent_id": "support-bot", "base": "2.5.0", "candidate": "2.6.0"})),
        Case("agents", True, get("/v1/agents")),
    ]
    return cases


@dataclass
class CaseResult:
    p50: list[float]
    p95: list[float]
    samples: int
    errors: dict[int, int]


def measure(client: httpx.Client, case: Case, requests: int) -> tuple[list[float], dict[int, int]]:
    errors: dict[int, int] = {}
    slow = False
    for _ in range(2):  # warm-up: connection, plan cache, first-touch of pages
        t0 = time.perf_counter()
        resp = case.request(client)
        if resp.status_code != 200:
            errors[resp.status_code] = errors.get(resp.status_code, 0) + 1
            return [], errors
        if time.perf_counter() - t0 > SLOW_S:
            slow = True  # seconds per request: a few samples say enough, and the box is shared
            break
    times: list[float] = []
    started = time.monotonic()
    for _ in range(MIN_SAMPLES if slow else requests):
        t0 = time.perf_counter()
        resp = case.request(client)
        times.append(1000 * (time.perf_counter() - t0))
        if resp.status_code != 200:
            errors[resp.status_code] = errors.get(resp.status_code, 0) + 1
        if time.monotonic() - started > CASE_BUDGET_S and len(times) >= MIN_SAMPLES:
            break
    return sorted(times), errors


def bench_backend(label: str, loaded: Loaded, spec: DatasetSpec, args: argparse.Namespace) -> list[list[str]]:
    port = free_port()
    env = server_env()
    cmd = [sys.executable, "-m", "benchlib.serve_app", "query", "--database-url", loaded.url, "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    profiler = None
    results: dict[str, CaseResult] = {}
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", 60, server)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120.0) as client:
            cases = build_cases(client, loaded.url, spec, args.seed)
            if args.only:
                cases = [c for c in cases if any(o in c.name for o in args.only.split(","))]
            if args.profile:
                profiler = py_spy_record(server.pid, Path(args.profile) / f"query_{label.split()[0]}.txt")
            for rnd in range(args.repeat):
                for case in cases:
                    times, errors = measure(client, case, args.requests)
                    res = results.setdefault(case.name, CaseResult([], [], 0, {}))
                    for code, n in errors.items():
                        res.errors[code] = res.errors.get(code, 0) + n
                    if times:
                        res.p50.append(percentile(times, 50))
                        res.p95.append(percentile(times, 95))
                        res.samples += len(times)
                    if args.verbose:
                        p95 = f"{percentile(times, 95):.1f}" if times else "-"
                        print(f"  round {rnd + 1} {label} {case.name}: p95 {p95} ms {errors or ''}", flush=True)
    finally:
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(30)
        stop_process(server)
        if server.returncode not in (0, -15) and server.stderr is not None:
            print(server.stderr.read().decode(errors="replace")[-2000:], file=sys.stderr)
    rows = []
    bar_ok = True
    for case in cases:
        res = results[case.name]
        if not res.p95:
            rows.append([case.name, "-", "-", "-", "-", "-", f"HTTP {sorted(res.errors)}"])
            if case.bar:
                bar_ok = False
            continue
        p95 = summarize(res.p95)
        verdict = ""
        if case.bar and label.startswith("postgresql"):
            verdict = "ok" if p95.median < BAR_MS else "OVER"
            bar_ok = bar_ok and p95.median < BAR_MS
        if res.errors:
            verdict += f" errors {res.errors}"
        rows.append([case.name, fmt(summarize(res.p50).median), fmt(p95.min), fmt(p95.median), fmt(p95.max),
                     str(res.samples), verdict])
    if label.startswith("postgresql"):
        rows.append([f"bar: every endpoint p95 < {BAR_MS:.0f} ms", "", "", "", "", "",
                     "MET" if bar_ok else "NOT MET"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="postgresql,sqlite")
    parser.add_argument("--pg-runs", type=int, default=1_000_000, help="runs in the PostgreSQL data set")
    parser.add_argument("--sqlite-runs", type=int, default=100_000, help="runs in the SQLite data set")
    parser.add_argument("--pg-url", default=os.environ.get("AGENTTRACER_BENCH_PG_URL", DEFAULT_BENCH_URL))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where the SQLite data set lives")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per case and round")
    parser.add_argument("--repeat", type=int, default=2, help="rounds over all cases")
    parser.add_argument("--reload", action="store_true", help="regenerate the data sets even if present")
    parser.add_argument("--drop", action="store_true", help="remove the loaded data sets and exit")
    parser.add_argument("--only", help="comma-separated substrings of case names to run")
    parser.add_argument("--profile", help="directory for a py-spy profile of the query server")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    sqlite_path = args.data_dir / f"sqlite_{args.sqlite_runs}.db"

    if args.drop:
        drop_postgres(args.pg_url, args.pg_runs)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
        print("dropped the loaded data sets")
        return 0

    print(f"machine: {machine_description()}")
    headers = ["request (p50 / p95 in ms)", "p50", "p95 min", "p95 median", "p95 max", "samples", "bar"]
    for backend in backends:
        if backend == "postgresql":
            spec = DatasetSpec(runs=args.pg_runs)
            print("postgresql: " + ", ".join(f"{k}={v}" for k, v in server_settings(args.pg_url).items()))
            loaded = load_postgres(args.pg_url, spec, force=args.reload)
        else:
            spec = DatasetSpec(runs=args.sqlite_runs)
            loaded = load_sqlite(sqlite_path, spec, force=args.reload)
        label = f"{backend} {loaded.runs:,} runs / {loaded.steps:,} steps"
        print(f"{label}: {loaded.detail} (schema revision {loaded.revision})", flush=True)
        rows = bench_backend(label, loaded, spec, args)
        print_table(f"Query latency, {label}, real HTTP to the Query API ({args.repeat} rounds)", headers, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
