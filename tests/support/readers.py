"""Many concurrent Query API readers, a ``/health`` probe beside them, and steady ingest: the availability load.

Used by tests/server/test_query_availability.py and bench/query_availability.py::

    result = asyncio.run(read_load(query_url, readers=250, rounds=4, run_ids=ids, headers=auth))
    result.unanswered()        # requests that got no HTTP answer within the client's timeout
    result.health_worst_s()    # the slowest /health answer while the readers ran

Each reader (of one ``httpx.AsyncClient``, a new connection per request) sends ``rounds`` requests one
after the other, cycling through a dashboard's reads (runs list, run detail, stats, agents) from a
different starting point, and after a 503 waits its ``Retry-After`` before the next; every request has
the client timeout, so a load always ends by itself. A probe asks ``/health`` every ``HEALTH_EVERY_S``
from a process of its own until the readers are done. ``Ingest`` posts small batches to the Ingest API
from a thread until stopped (at most ``max_batches``). Loopback addresses only.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from multiprocessing.connection import Connection
from typing import Protocol

import httpx

from tests.support.rundata import RunSpec, StepSpec, events

HEALTH_EVERY_S = 0.25
MAX_RETRY_AFTER_S = 5.0
KINDS = ("runs", "run", "stats", "agents")


class EventLike(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...

    def set(self) -> None: ...


@dataclass(frozen=True)
class Answer:
    kind: str
    status: int | None  # None: no answer within the client timeout (or the connection failed)
    seconds: float
    retry_after: str | None = None
    error: str | None = None  # the client's exception class when there was no answer


@dataclass
class LoadResult:
    answers: list[Answer] = field(default_factory=list)
    health: list[Answer] = field(default_factory=list)
    seconds: float = 0.0

    def unanswered(self) -> list[Answer]:
        return [a for a in self.answers if a.status is None]

    def unexpected(self) -> list[Answer]:
        """Answers other than 200 or a 503 that says when to retry."""
        return [a for a in self.answers
                if a.status is not None and a.status != 200 and not (a.status == 503 and a.retry_after)]

    def rejected(self) -> int:
        return sum(a.status == 503 for a in self.answers)

    def health_worst_s(self) -> float:
        return max((h.seconds if h.status == 200 else float("inf") for h in self.health), default=float("inf"))


def _request(kind: str, run_ids: Sequence[str], i: int) -> tuple[str, dict[str, str]]:
    if kind == "runs":
        return "/v1/runs", {"limit": "50"} if i % 2 else {"limit": "20", "status": "failure"}
    if kind == "run":
        return f"/v1/runs/{run_ids[i % len(run_ids)]}", {}
    if kind == "stats":
        return "/v1/stats", {} if i % 3 else {"agent_id": "agent-1"}
    return "/v1/agents", {}


async def _reader(client: httpx.AsyncClient, index: int, rounds: int, run_ids: Sequence[str],
                  out: list[Answer]) -> None:
    for r in range(rounds):
        kind = KINDS[(index + r) % len(KINDS)]
        path, params = _request(kind, run_ids, index + r)
        started = time.monotonic()
        try:
            resp = await client.get(path, params=params)
        except httpx.HTTPError as exc:
            out.append(Answer(kind, None, time.monotonic() - started, error=type(exc).__name__))
            continue
        retry_after = resp.headers.get("retry-after")
        out.append(Answer(kind, resp.status_code, time.monotonic() - started, retry_after))
        if resp.status_code == 503 and retry_after is not None and retry_after.isdigit():
            # As a dashboard does: the next request after a refusal waits as long as the server asked.
            await asyncio.sleep(min(float(retry_after), MAX_RETRY_AFTER_S))


def _probe(url: str, ready: EventLike, done: EventLike, timeout_s: float, out: Connection) -> None:
    """Asks /health until ``done``; sends its answers through ``out``. It runs in a process of its own: the
    readers' work in the load's process would otherwise delay (and so falsify) its timings. A first,
    unrecorded request pays the new process's one-time costs (imports, the first connection) before
    ``ready`` lets the readers start."""
    answers: list[Answer] = []
    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        with contextlib.suppress(httpx.HTTPError):
            client.get("/health")
        ready.set()
        while True:
            started = time.monotonic()
            try:
                resp = client.get("/health")
                answers.append(Answer("health", resp.status_code, time.monotonic() - started))
            except httpx.HTTPError:
                answers.append(Answer("health", None, time.monotonic() - started))
            if done.wait(HEALTH_EVERY_S):
                break
    out.send(answers)


async def read_load(url: str, *, readers: int, rounds: int, run_ids: Sequence[str],
                    headers: dict[str, str] | None = None, timeout_s: float = 30.0,
                    budget_s: float | None = None) -> LoadResult:
    """``readers`` concurrent readers of ``rounds`` requests each, with the ``/health`` probe beside them.

    With ``budget_s`` the readers are stopped after that long and every request not answered by then
    counts as unanswered (error ``budget``): a server that hangs cannot hold the load up for long."""
    result = LoadResult()
    spawn = multiprocessing.get_context("spawn")
    ready, done = spawn.Event(), spawn.Event()
    receive, send = spawn.Pipe(duplex=False)
    probe = spawn.Process(target=_probe, args=(url, ready, done, timeout_s, send), name="health-probe", daemon=True)
    probe.start()
    await asyncio.to_thread(ready.wait, timeout_s + 30)
    started = time.monotonic()
    # One client, one connection per reader: a client each would cost the load process more than the server.
    # A connection per request (``Connection: close``): a busy load process can leave a kept-alive connection
    # idle past the server's keep-alive timeout and then send on it as the server closes it, a client-side
    # race that would look like a request without an answer.
    limits = httpx.Limits(max_connections=readers, max_keepalive_connections=0)
    each = {**(headers or {}), "Connection": "close"}
    try:
        async with httpx.AsyncClient(base_url=url, headers=each, timeout=timeout_s, limits=limits) as client:
            everyone = asyncio.gather(*(_reader(client, i, rounds, run_ids, result.answers) for i in range(readers)))
            try:
                await asyncio.wait_for(everyone, budget_s)
            except asyncio.TimeoutError:
                missing = readers * rounds - len(result.answers)
                result.answers += [Answer("unsent", None, budget_s or 0.0, error="budget")] * missing
        result.seconds = time.monotonic() - started
    finally:
        done.set()
        if await asyncio.to_thread(receive.poll, timeout_s + 30):
            result.health = receive.recv()
        await asyncio.to_thread(probe.join, 30)
    return result


class Ingest:
    """Posts a batch of ``runs_per_batch`` small runs every ``every_s`` to an Ingest API from a thread."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, *, runs_per_batch: int = 20,
                 every_s: float = 0.1, max_batches: int = 2_000) -> None:
        self.url, self.headers = url, headers or {}
        self.runs_per_batch, self.every_s, self.max_batches = runs_per_batch, every_s, max_batches
        self.statuses: list[int | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ingest-load", daemon=True)

    def __enter__(self) -> Ingest:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _batch(self) -> list[dict[str, object]]:
        now = datetime.now(timezone.utc) - timedelta(seconds=5)
        specs = [RunSpec(f"agent-{i % 5}", "v2", "prod", now, "success", run_id=str(uuid.uuid4()),
                         steps=[StepSpec(1, "llm", "gpt", latency_ms=40.0), StepSpec(2, "tool", "search")])
                 for i in range(self.runs_per_batch)]
        return [ev for spec in specs for ev in events(spec)]

    def _loop(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            for _ in range(self.max_batches):
                if self._stop.wait(self.every_s):
                    return
                try:
                    self.statuses.append(client.post("/v1/ingest", json={"events": self._batch()}).status_code)
                except httpx.HTTPError:
                    self.statuses.append(None)
