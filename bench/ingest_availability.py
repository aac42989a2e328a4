"""Ingest availability under slow and idle clients: does a normal batch still get through on time?

For each code tree (this checkout, and with ``--old-src`` an older ``src/`` beside it, e.g. a worktree of an
earlier commit) and each database, one real ingest server process (``agenttracer serve ingest`` on a fresh,
migrated database, loopback only) and, from this process:

1. **baseline** — ``--batches`` normal SDK batches (one run: start, 10 steps, end) sent one after another;
2. **attack** — ``--slow`` slow uploads (headers announcing a 100,000-byte body, then one byte every 2 s,
   each from its own loopback address 127.0.1.N, as distributed clients would) and ``--idle`` idle sockets
   (connected, sending nothing) are opened; one second later ``--batches`` normal batches are sent again,
   one after another, from 127.0.0.1;
3. ``--linger`` seconds after the attack began: how many idle sockets and slow uploads the server has closed.

Printed per tree and database: the normal batches' latency (median, p95, max) and statuses before and during
the attack, and the delay the attack added (p95 during minus p95 before). The bar (DESIGN.md): 50 slow
uploads plus 500 idle sockets delay a normal batch by less than 1 s. Every loop is bounded; nothing leaves
loopback.

    .venv/bin/python bench/ingest_availability.py                                  # this tree, SQLite
    git worktree add /tmp/at-old <commit> && \\
    .venv/bin/python bench/ingest_availability.py --old-src /tmp/at-old/src --backend both
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import orjson
from benchlib.harness import fmt, machine_description, percentile, print_table, stop_process, wait_for_http
from benchlib.pg import ensure_database, temporary_schema

HOST = "127.0.0.1"
DEFAULT_PORT = 18710  # this benchmark's range: 18710..18719
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/at_bench"
SLOW_LENGTH = 100_000
SLOW_EVERY_S = 2.0
BATCH_TIMEOUT_S = 30.0


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def normal_batch() -> bytes:
    """One SDK-shaped batch: a run with 10 steps, timestamps a minute ago."""
    run_id, t0 = str(uuid.uuid4()), datetime.now(timezone.utc) - timedelta(minutes=1)
    ident = {"run_id": run_id, "agent_id": "bench-agent", "agent_version": "1.0", "environment": "bench"}
    events: list[dict[str, Any]] = [{"type": "run_start", **ident, "started_at": _iso(t0)}]
    for seq in range(1, 11):
        start = t0 + timedelta(seconds=seq)
        events.append({"type": "step", "run_id": run_id, "seq": seq, "step_type": "tool", "name": f"tool_{seq}",
                       "started_at": _iso(start), "ended_at": _iso(start + timedelta(milliseconds=200)),
                       "latency_ms": 200.0, "status": "ok"})
    events.append({"type": "run_end", **ident, "ended_at": _iso(t0 + timedelta(seconds=12)), "status": "success"})
    return orjson.dumps({"events": events})


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def add(self, seconds: float, status: str) -> None:
        self.latencies.append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def send_batches(base: str, n: int) -> Phase:
    phase = Phase()
    async with httpx.AsyncClient(base_url=base, timeout=BATCH_TIMEOUT_S) as client:
        for _ in range(n):
            body = normal_batch()
            started = time.perf_counter()
            try:
                response = await client.post("/v1/ingest", content=body, headers={"content-type": "application/json"})
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            phase.add(time.perf_counter() - started, status)
    return phase


async def slow_upload(port: int, source: str, stop: asyncio.Event, answers: list[bytes]) -> None:
    """Headers announcing SLOW_LENGTH bytes, then one byte every SLOW_EVERY_S until stopped or answered."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    except OSError:
        answers.append(b"connect-failed")
        return
    head = (f"POST /v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {SLOW_LENGTH}\r\n\r\n{{")
    try:
        writer.write(head.encode())
        for _ in range(SLOW_LENGTH):  # bounded; in practice ended by stop or by the server
            try:
                answer = await asyncio.wait_for(reader.read(256), SLOW_EVERY_S)
            except asyncio.TimeoutError:
                answer = None
            if answer is not None:  # the server answered or closed: the upload is over
                answers.append(answer.split(b"\r\n", 1)[0] or b"closed")
                return
            if stop.is_set():
                return
            writer.write(b" ")
            await writer.drain()
    except OSError:
        answers.append(b"reset")
    finally:
        writer.close()


async def attack_and_measure(port: int, args: argparse.Namespace) -> dict[str, Any]:
    base = f"http://{HOST}:{port}"
    baseline = await send_batches(base, args.batches)
    stop = asyncio.Event()
    slow_answers: list[bytes] = []
    idle = []
    for _ in range(args.idle):
        try:
            idle.append(await asyncio.open_connection(HOST, port, local_addr=("127.0.0.3", 0)))
        except OSError:
            break
    attack_started = time.monotonic()
    slow = [asyncio.create_task(slow_upload(port, f"127.0.1.{i % 250 + 1}", stop, slow_answers))
            for i in range(args.slow)]
    await asyncio.sleep(1.0)
    during = await send_batches(base, args.batches)
    await asyncio.sleep(max(0.0, attack_started + args.linger - time.monotonic()))
    idle_open = 0
    for reader, _ in idle:
        try:
            closed = await asyncio.wait_for(reader.read(1), 0.01) == b""
        except (asyncio.TimeoutError, OSError):
            closed = False
        idle_open += not closed
    slow_open = sum(not t.done() for t in slow)
    stop.set()
    for _, writer in idle:
        writer.close()
    await asyncio.gather(*slow, return_exceptions=True)
    return {"baseline": baseline, "during": during, "idle_open": idle_open, "idle": len(idle),
            "slow_open": slow_open, "slow_answers": slow_answers}


@contextmanager
def database(backend: str, pg_url: str) -> Iterator[str]:
    if backend == "postgresql":
        ensure_database(pg_url)
        with temporary_schema(pg_url, prefix="at_bench_avail") as url:
            yield url
        return
    tmp = Path(tempfile.mkdtemp(prefix="at_bench_avail_"))
    try:
        yield f"sqlite:///{(tmp / 'ingest.db').as_posix()}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def server(src: Path, url: str, port: int) -> Iterator[None]:
    env = dict(os.environ, PYTHONPATH=str(src), AGENTTRACER_LOG_LEVEL="warning")
    subprocess.run([sys.executable, "-m", "agenttracer", "migrate", "--database-url", url], env=env, check=True,
                   capture_output=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttracer", "serve", "ingest", "--port", str(port), "--database-url", url],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://{HOST}:{port}/health", 60, proc)
        yield
    finally:
        stop_process(proc)


def _p(phase: Phase, q: float) -> float:
    return percentile(sorted(phase.latencies), q)


def _cells(phase: Phase) -> list[str]:
    statuses = " ".join(f"{k}×{v}" for k, v in sorted(phase.statuses.items()))
    return [fmt(_p(phase, 50) * 1000), fmt(_p(phase, 95) * 1000), fmt(max(phase.latencies) * 1000), statuses]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--old-src", type=Path, help="an older tree's src/ to measure side by side")
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--linger", type=float, default=12.0,
                        help="seconds after the attack began to count the connections still open")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()

    trees = [("new", Path(__file__).resolve().parents[1] / "src")]
    if args.old_src is not None:
        trees.append(("old", args.old_src.resolve()))
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    print(machine_description())
    print(f"{args.slow} slow uploads (1 byte / {SLOW_EVERY_S:g} s, one address each), {args.idle} idle sockets, "
          f"{args.batches} normal batches of 12 events before and during")
    rows = []
    for backend in backends:
        for name, src in trees:
            with database(backend, args.pg_url) as url, server(src, url, args.port):
                result = asyncio.run(attack_and_measure(args.port, args))
            before, during = result["baseline"], result["during"]
            delay = _p(during, 95) - _p(before, 95)
            slow_seen = " ".join(sorted({a.decode(errors="replace")[:16] for a in result["slow_answers"]})) or "-"
            rows.append([backend, name, *_cells(before), *_cells(during), fmt(delay * 1000),
                         f"{result['idle_open']}/{result['idle']}", f"{result['slow_open']}/{args.slow}", slow_seen])
    print_table(
        "Normal batches before / during the attack (ms), and connections still open after --linger",
        ["db", "code", "p50", "p95", "max", "status", "p50", "p95", "max", "status", "delay p95",
         "idle open", "slow open", "slow answers"],
        rows,
    )


if __name__ == "__main__":
    main()
