"""Run detail of one very long run: the first page's size and time, every page's time, the server's RSS.

1. Starts a real Ingest API and a real Query API (``agenttracer serve ingest|query``, one process each)
   over a fresh database: a SQLite file, or a throwaway schema in the bench PostgreSQL database.
2. Sends one run of ``--steps`` steps (default 100,000; SDK-like: metadata on most steps, an error
   step retried every 50 steps) through ``POST /v1/ingest`` in batches of 1,000 events.
3. Times ``GET /v1/runs/{id}`` (the first page, default page size) ``--repeat`` times over HTTP with
   a fresh client connection each, and prints its size and p50/p95; then walks every page with
   ``steps_after`` and prints the per-page p50/p95 and the time for the whole walk.
4. Prints the Query API's resident memory before and after (VmRSS) and its peak (VmHWM), read from
   /proc, so a page that materialised the whole run would show.

Bars (issue 15): first page < 1 MB and < 200 ms; query server RSS < 200 MB.

    .venv/bin/python bench/run_detail.py                                # SQLite and PostgreSQL
    .venv/bin/python bench/run_detail.py --backend sqlite --steps 20000
    .venv/bin/python bench/run_detail.py --pg-url postgresql://postgres@127.0.0.1:5432/mydb --ports 18300
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import sqlalchemy as sa
from benchlib.harness import fmt, free_port, machine_description, percentile, print_table, stop_process, wait_for_http
from benchlib.pg import DEFAULT_BENCH_URL, ensure_database, temporary_schema

from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade

BATCH = 1000
FIRST_PAGE_BAR_BYTES = 1_000_000
FIRST_PAGE_BAR_MS = 200.0
RSS_BAR_MB = 200.0


@contextmanager
def fresh_database(backend: str, pg_url: str) -> Iterator[str]:
    if backend == "postgresql":
        ensure_database(pg_url)
        with temporary_schema(pg_url, prefix="at_bench_detail") as url:
            yield url
        return
    tmp = Path(tempfile.mkdtemp(prefix="at_bench_detail_"))
    try:
        yield f"sqlite:///{(tmp / 'detail.db').as_posix()}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def serve(part: str, db_url: str, port: int) -> Iterator[tuple[str, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update(AGENTTRACER_DATABASE_URL=db_url, AGENTTRACER_LOG_LEVEL="warning")
    cmd = [sys.executable, "-m", "agenttracer", "serve", part, "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", 30.0, proc)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop_process(proc)


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak so far (VmHWM), in MB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def long_run(steps: int) -> tuple[str, list[dict[str, Any]]]:
    """One SDK-shaped run: plan / retrieval / llm / tool steps with metadata, a retried error every 50."""
    rid = str(uuid.uuid4())
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)

    def ts(ms: float) -> str:
        return (t0 + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")

    identity = {"run_id": rid, "agent_id": "bench-long-agent", "agent_version": "v1", "environment": "bench"}
    events: list[dict[str, Any]] = [{"type": "run_start", **identity, "started_at": ts(0)}]
    kinds = (("plan", "plan_next", {}), ("retrieval", "kb_search", {"hits": 5}),
             ("llm", "draft", {"model": "gpt-4o-mini", "tokens_in": 812, "tokens_out": 96}),
             ("tool", "billing_api", {"http_status": 200}))
    for seq in range(1, steps + 1):
        step_type, name, meta = kinds[seq % len(kinds)]
        step: dict[str, Any] = {
            "type": "step", "run_id": rid, "seq": seq, "step_type": step_type, "name": name,
            "started_at": ts(seq * 10.0), "ended_at": ts(seq * 10.0 + 7.5), "latency_ms": 7.5, "status": "ok",
            "metadata": meta,
        }
        if seq % 50 == 0:
            step.update(status="error", error_class="TimeoutError", failure_code="timeout", metadata={})
        elif seq % 50 == 1 and seq > 1:
            step.update(attempt=2, retry_of_seq=seq - 1)
        events.append(step)
    events.append({"type": "run_end", **identity, "ended_at": ts(steps * 10.0 + 20), "status": "success"})
    return rid, events


def load(ingest_url: str, events: list[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    with httpx.Client(timeout=120) as http:
        for i in range(0, len(events), BATCH):
            r = http.post(f"{ingest_url}/v1/ingest", json={"events": events[i:i + BATCH]})
            r.raise_for_status()
            assert r.json()["rejected"] == 0, r.text[:500]
    return time.perf_counter() - t0


def measure(backend: str, args: argparse.Namespace) -> list[str]:
    rid, events = long_run(args.steps)
    ingest_port = args.ports if args.ports else free_port()
    query_port = args.ports + 1 if args.ports else free_port()
    with fresh_database(backend, args.pg_url) as db_url:
        engine = make_engine(db_url, poolclass=sa.pool.NullPool)
        upgrade(engine)
        engine.dispose()
        with serve("ingest", db_url, ingest_port) as (ingest_url, _):
            load_s = load(ingest_url, events)
        with serve("query", db_url, query_port) as (query_url, pid):
            idle = rss_mb(pid)
            detail_url = f"{query_url}/v1/runs/{rid}"
            first_ms: list[float] = []
            size = 0
            for _ in range(args.repeat):
                with httpx.Client(timeout=60) as http:  # a new connection each time, as a browser tab opening
                    t0 = time.perf_counter()
                    r = http.get(detail_url)
                    first_ms.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
                size = len(r.content)
            body = r.json()
            assert body["run"]["step_count"] == args.steps, body["run"]["step_count"]
            page_ms: list[float] = []
            seen = 0
            after: int | None = 0
            walk0 = time.perf_counter()
            with httpx.Client(timeout=60) as http:
                while after is not None:
                    t0 = time.perf_counter()
                    page = http.get(detail_url, params={"steps_after": after}).json()
                    page_ms.append((time.perf_counter() - t0) * 1000)
                    seen += len(page["steps"])
                    after = page["next_steps_after"]
            walk_s = time.perf_counter() - walk0
            assert seen == args.steps, seen
            after_walk = rss_mb(pid)
    first_ms.sort()
    page_ms.sort()
    p95_first = percentile(first_ms, 0.95)
    ok = size < FIRST_PAGE_BAR_BYTES and p95_first < FIRST_PAGE_BAR_MS and after_walk["VmHWM"] < RSS_BAR_MB
    return [
        backend, f"{args.steps:,}", f"{load_s:.1f}", f"{len(body['steps'])}", f"{size / 1024:.0f}",
        fmt(percentile(first_ms, 0.5)), fmt(p95_first), f"{len(page_ms)}", fmt(percentile(page_ms, 0.5)),
        fmt(percentile(page_ms, 0.95)), f"{walk_s:.1f}", f"{idle['VmRSS']:.0f}", f"{after_walk['VmRSS']:.0f}",
        f"{after_walk['VmHWM']:.0f}", "ok" if ok else "NOT MET",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite,postgresql")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30, help="first-page requests to time")
    parser.add_argument("--pg-url", default=DEFAULT_BENCH_URL)
    parser.add_argument("--ports", type=int, default=0, help="ingest on this port, query on the next (default: free)")
    args = parser.parse_args()
    print(machine_description(), flush=True)
    rows = [measure(b.strip(), args) for b in args.backend.split(",") if b.strip()]
    print_table(
        "GET /v1/runs/{id} of one long run (times in ms over HTTP; sizes in KB; RSS of the Query API in MB)",
        ["backend", "steps", "load s", "page", "1st KB", "1st p50", "1st p95", "pages", "page p50", "page p95",
         "walk s", "RSS idle", "RSS after", "RSS peak", "bars"],
        rows,
    )
    print(f"bars: first page < {FIRST_PAGE_BAR_BYTES / 1e6:.0f} MB and p95 < {FIRST_PAGE_BAR_MS:.0f} ms; "
          f"Query API peak RSS < {RSS_BAR_MB:.0f} MB")


if __name__ == "__main__":
    main()
