"""Query API availability: 250 concurrent readers during ingest, this code side by side with a baseline revision.

Per backend (SQLite, PostgreSQL) and per side (``new``: this checkout; ``old``: ``--baseline``, default
ff9d5e6, the code before the read gate, exported with ``git archive`` into a temporary directory):

1. a fresh database is migrated and keyed by that side's own CLI (``migrate``, ``keys create``);
   ``--runs`` runs are sent through that side's Ingest API;
2. ``agenttracer serve query`` and ``serve ingest`` run as processes of their own (loopback, the bench
   port range); an ingest driver posts a 20-run batch every 0.1 s throughout;
3. ``--readers`` concurrent readers (tests/support/readers.py: runs lists, run detail, stats, agents,
   a read key on every request) send ``--rounds`` requests each, while a separate process asks
   ``/health`` every 0.25 s. Each request waits at most ``--client-timeout`` seconds, and the whole
   load at most ``--budget`` seconds (the old side freezes: whatever is unanswered by then counts so);
4. right afterwards, 8 readers x 4 requests measure whether the server serves normally again.

Prints, per backend and side: requests answered 200, 503 (all carry Retry-After), unanswered; client-side
p50/p95/p99 of the answered; the slowest /health; the server's own p99 from its request log; and the
after-load round. Client-side times include the load process's own queueing on a small machine.

    .venv/bin/python bench/query_availability.py [--backend sqlite,postgresql] [--readers 250] [--rounds 4]
        [--baseline ff9d5e6 | --baseline none] [--pg-url postgresql://…/at_reads]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from benchlib.harness import (  # noqa: E402
    free_port,
    machine_description,
    percentile,
    print_table,
    stop_process,
    wait_for_http,
)
from benchlib.pg import ensure_database, temporary_schema  # noqa: E402

from tests.support.readers import Ingest, LoadResult, read_load  # noqa: E402
from tests.support.rundata import RunSpec, StepSpec, events  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/at_reads"
DEADLINE_MS = 10_000
_KEY = re.compile(r"\bat_(?:read|ingest)_[A-Za-z0-9_-]+")


def _env(src: Path, db_url: str, log_json: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update(PYTHONPATH=str(src), AGENTTRACER_DATABASE_URL=db_url, AGENTTRACER_QUERY_TIMEOUT_MS=str(DEADLINE_MS),
               AGENTTRACER_LOG_LEVEL="info" if log_json else "warning")
    if log_json:
        env["AGENTTRACER_LOG_FORMAT"] = "json"
    return env


def _cli(src: Path, db_url: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "agenttracer", *args], env=_env(src, db_url), capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout


def _key(src: Path, db_url: str, scope: str) -> str:
    found = _KEY.search(_cli(src, db_url, "keys", "create", "--scope", scope))
    if found is None:
        raise RuntimeError(f"keys create --scope {scope} printed no key")
    return found.group(0)


@contextlib.contextmanager
def _serve(src: Path, db_url: str, part: str, log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agenttracer", "serve", part, "--port", str(port)],
                                env=_env(src, db_url, log_json=True), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", 60, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def _load_runs(ingest_url: str, key: str, n: int) -> list[str]:
    from datetime import datetime, timedelta, timezone

    start = datetime.now(timezone.utc) - timedelta(hours=12)
    specs = [RunSpec(f"agent-{i % 7}", f"v{i % 3}", "prod", start + timedelta(seconds=20 * i),
                     "success" if i % 5 else "failure",
                     steps=[StepSpec(1, "llm", "gpt", latency_ms=float(i % 900 + 1)), StepSpec(2, "tool", "search")])
             for i in range(n)]
    batch = [ev for spec in specs for ev in events(spec)]
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        for i in range(0, len(batch), 1000):
            r = client.post(f"{ingest_url}/v1/ingest", json={"events": batch[i:i + 1000]})
            r.raise_for_status()
    return [s.run_id for s in specs]


def _server_p99(log: Path) -> float | None:
    durations = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            # Every request but the probe's; one refused before routing is logged as route "unmatched".
            if isinstance(record, dict) and record.get("event") == "request" and record.get("route") != "/health":
                durations.append(float(record["duration_ms"]) / 1000)
    return percentile(sorted(durations), 99) if durations else None


def one_side(src: Path, db_url: str, work: Path, args: argparse.Namespace) -> list[str]:
    _cli(src, db_url, "migrate")
    read_key, ingest_key = _key(src, db_url, "read"), _key(src, db_url, "ingest")
    read = {"Authorization": f"Bearer {read_key}"}
    query_log = work / "query.log"
    with _serve(src, db_url, "ingest", work / "ingest.log") as ingest_url, \
            _serve(src, db_url, "query", query_log) as query_url:
        run_ids = _load_runs(ingest_url, ingest_key, args.runs)
        with Ingest(ingest_url, {"Authorization": f"Bearer {ingest_key}"}):
            result = asyncio.run(read_load(query_url, readers=args.readers, rounds=args.rounds, run_ids=run_ids,
                                           headers=read, timeout_s=args.client_timeout, budget_s=args.budget))
        after = asyncio.run(read_load(query_url, readers=8, rounds=4, run_ids=run_ids, headers=read,
                                      timeout_s=args.client_timeout, budget_s=args.client_timeout + 5))
    return _row(result, after, _server_p99(query_log))


def _row(result: LoadResult, after: LoadResult, server_p99: float | None) -> list[str]:
    answered = sorted(a.seconds for a in result.answers if a.status is not None)

    def pct(q: float) -> str:
        return f"{percentile(answered, q):.2f}" if answered else "-"

    ok = sum(a.status == 200 for a in result.answers)
    for odd in result.unexpected():
        print(f"  unexpected answer: {odd.kind} {odd.status} after {odd.seconds:.2f} s", flush=True)
    health = result.health_worst_s()
    after_ok = sum(a.status == 200 for a in after.answers)
    return [str(ok), str(result.rejected()), str(len(result.unanswered())), str(len(result.unexpected())),
            pct(50), pct(95), pct(99), "none" if health == float("inf") else f"{health:.2f}",
            "-" if server_p99 is None else f"{server_p99:.2f}", f"{after_ok}/{len(after.answers)}"]


@contextlib.contextmanager
def _baseline_src(rev: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="reads-baseline-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True)
        with tarfile.open(fileobj=__import__("io").BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / "src"


@contextlib.contextmanager
def _database(backend: str, pg_url: str, work: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{(work / 'at.db').as_posix()}"
        return
    ensure_database(pg_url)
    with temporary_schema(pg_url, prefix="at_reads_avail") as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite,postgresql")
    parser.add_argument("--readers", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--client-timeout", type=float, default=DEADLINE_MS / 1000 + 20)
    parser.add_argument("--budget", type=float, default=90.0, help="seconds the load may take at most")
    parser.add_argument("--baseline", default="ff9d5e6", help="revision to compare with, or 'none'")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    print(machine_description())
    print(f"{args.readers} readers x {args.rounds} requests, read key on, ingest running; deadline {DEADLINE_MS} ms")
    headers = ["backend", "code", "200", "503", "unanswered", "other", "p50 s", "p95 s", "p99 s",
               "/health max s", "server p99 s", "after: 200"]
    rows = []
    sides: list[tuple[str, contextlib.AbstractContextManager[Path]]] = [("new", contextlib.nullcontext(ROOT / "src"))]
    if args.baseline != "none":
        sides.append((f"old {args.baseline}", _baseline_src(args.baseline)))
    with contextlib.ExitStack() as stack:
        srcs = [(name, stack.enter_context(ctx)) for name, ctx in sides]
        for backend in args.backend.split(","):
            for name, src in srcs:
                with tempfile.TemporaryDirectory(prefix="reads-avail-") as tmp, \
                        _database(backend, args.pg_url, Path(tmp)) as db_url:
                    rows.append([backend, name, *one_side(src, db_url, Path(tmp), args)])
                    print(" | ".join(rows[-1]), flush=True)
    print_table(f"Query API under {args.readers} concurrent readers during ingest", headers, rows)


if __name__ == "__main__":
    main()
