"""Who may hold what on the Ingest API's write routes (``/v1/ingest`` and ``/v1/traces`` alike), so that no
single client — slow, bursty or crafted — takes the service from the others.

A write request goes through three gates, in this order:

1. **Its client's share.** A client is its API key, or its address when it sends none. One client has at
   most ``max_requests_per_client`` requests in progress (reading, waiting or writing); past that it is
   answered **429** with ``Retry-After`` at once, before its body is read.
2. **Its body, whole, in time, within the buffer.** The body is read and size-checked *before* any write
   slot is taken, within ``body_timeout_s`` of the start of the read (else **408**, and the connection is
   closed): a client that trickles its body holds a coroutine and the bytes it sent, never a slot. The
   bytes held by all bodies being read or waiting are bounded by ``buffer_bytes``; past that a request is
   answered **503** with ``Retry-After`` (nothing was stored).
3. **A write slot.** ``slots`` batches are parsed and written at once (each may expand to several times
   its 5 MiB once parsed: this bounds memory, and on 2 cores more would only queue for the CPU). One
   client holds at most ``client_slots`` of them (half, rounded up), so its burst queues behind its own
   batches, not in front of everyone's. A batch that waits longer than ``busy_wait_s`` for a slot is
   answered **503** with ``Retry-After``.

The write itself runs through ``settle``: once started it is awaited to its end, so that the answer always
says what was stored, also when the server stops (SIGTERM) while the batch is being written.

Slow *headers* and idle connections are closed below the app, by the server's HTTP protocol
(``server/connections.py``). Every refusal here is a ``Problem``: both routes already answer those in
their own error shape (JSON, or ``google.rpc.Status`` on ``/v1/traces``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request

from agenttracer.model import MAX_BATCH_BYTES
from agenttracer.server.auth import principal_of
from agenttracer.server.errors import RETRY_AFTER_SECONDS
from agenttracer.server.ingest.body import JSON_MEDIA, Problem, read_body
from agenttracer.server.settings import Settings

R = TypeVar("R")
# Cancellations a write outlasts (anyio delivers one per loop iteration to a cancelled scope); the runner's
# watchdog ends the process long before a write could need more.
_MAX_CANCELS = 1_000_000

# Batches parsed and written at the same time (see gate 3).
MAX_CONCURRENT_BATCHES = 4
# How long a batch may wait for a slot before the client is told to come back later (503).
BUSY_WAIT_SECONDS = 10.0
# Bodies held at once, in bytes: as many full-size batches as a few clients' worth of requests.
BUFFER_BYTES = 16 * MAX_BATCH_BYTES


@dataclass(frozen=True)
class Limits:
    """The write routes' limits; ``from_settings`` derives them from the configured ones."""

    max_requests_per_client: int = 16
    body_timeout_s: float = 30.0
    slots: int = MAX_CONCURRENT_BATCHES
    busy_wait_s: float = BUSY_WAIT_SECONDS
    buffer_bytes: int = BUFFER_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(max_requests_per_client=settings.max_requests_per_client,
                   body_timeout_s=float(settings.body_timeout_seconds))

    @property
    def client_slots(self) -> int:
        return max(1, math.ceil(self.slots / 2))


def _retry(status: int, code: str, field_name: str, rule: str, retry_after: int = RETRY_AFTER_SECONDS) -> Problem:
    return Problem(status, code, field_name, rule, {"Retry-After": str(retry_after)})


@dataclass
class _Client:
    slots: asyncio.Semaphore
    requests: int = 0


class Admission:
    """The three gates of one Ingest API process (one event loop)."""

    def __init__(self, limits: Limits, on_busy: Callable[[], object] | None = None) -> None:
        self.limits = limits
        self._on_busy = on_busy
        self._slots = asyncio.Semaphore(limits.slots)
        self._clients: dict[str, _Client] = {}
        self._buffered = 0
        # Refusals by gate, for metrics and tests: "client", "timeout", "buffer", "busy".
        self.refused: dict[str, int] = {"client": 0, "timeout": 0, "buffer": 0, "busy": 0}

    @staticmethod
    def client_of(request: Request) -> str:
        principal = principal_of(request)
        if principal.key_id is not None:
            return f"key:{principal.key_id}"
        return f"addr:{request.client.host if request.client else 'unknown'}"

    @contextlib.asynccontextmanager
    async def request(self, request: Request, media_types: tuple[str, ...] = JSON_MEDIA) -> AsyncIterator[bytes]:
        """Admit one write request: yields its whole body, with a write slot held. Raises ``Problem``."""
        name = self.client_of(request)
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = _Client(slots=asyncio.Semaphore(self.limits.client_slots))
        if client.requests >= self.limits.max_requests_per_client:
            self.refused["client"] += 1
            raise _retry(429, "too_many_requests", "client",
                         f"at most {self.limits.max_requests_per_client} write requests in progress per API key "
                         "(per address without a key); nothing was stored, retry after Retry-After")
        client.requests += 1
        held = [0]
        try:
            try:
                body = await self._read(request, media_types, held)
                await self._acquire(client)
            except asyncio.CancelledError:
                # The server stops past its grace period (server/runner.py) before this batch was written.
                raise _retry(503, "server_stopping", "server",
                             "the server is stopping; nothing was stored, retry after Retry-After") from None
            try:
                yield body
            finally:
                self._slots.release()
                client.slots.release()
        finally:
            self._buffered -= held[0]
            client.requests -= 1
            if client.requests == 0:
                del self._clients[name]

    async def _read(self, request: Request, media_types: tuple[str, ...], held: list[int]) -> bytes:
        def take(n: int) -> None:
            if self._buffered + n > self.limits.buffer_bytes:
                self.refused["buffer"] += 1
                raise _retry(503, "server_busy", "server",
                             "busy: too many request bodies held at once; nothing was stored, retry later")
            self._buffered += n
            held[0] += n

        try:
            return await asyncio.wait_for(read_body(request, media_types, take), self.limits.body_timeout_s)
        except asyncio.TimeoutError:
            self.refused["timeout"] += 1
            raise Problem(408, "request_timeout", "body",
                          f"must arrive whole within {self.limits.body_timeout_s:g} s of the request's start; "
                          "nothing was stored", {"Connection": "close"}) from None

    def _busy(self, problem: Problem) -> Problem:
        self.refused["busy"] += 1
        if self._on_busy is not None:
            self._on_busy()
        return problem

    async def _acquire(self, client: _Client) -> None:
        """The client's share, then a write slot, both within ``busy_wait_s``; released by ``request``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.busy_wait_s
        busy = _retry(503, "server_busy", "server",
                      f"at most {self.limits.slots} batches are processed at once; nothing was stored, retry later")
        try:
            await asyncio.wait_for(client.slots.acquire(), self.limits.busy_wait_s)
        except asyncio.TimeoutError:
            raise self._busy(busy) from None
        try:
            await asyncio.wait_for(self._slots.acquire(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            client.slots.release()
            raise self._busy(busy) from None
        except BaseException:
            client.slots.release()
            raise


async def settle(fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` in the thread pool, awaited to its end even when the request is cancelled meanwhile.

    A server stopping past its grace period cancels the requests in flight (server/runner.py), but a batch's
    thread cannot be stopped: it may still commit. So the request waits for the outcome and answers what was
    really done — never a 500 for a batch that was stored. The runner's watchdog bounds the wait.
    """
    # A bare executor future: no task or cancel scope of the request's can cancel it.
    # The request's context (its request id for log lines) goes along, as run_in_threadpool would take it.
    context = contextvars.copy_context()
    work = asyncio.get_running_loop().run_in_executor(None, functools.partial(context.run, fn, *args))
    cancels = 0
    while True:
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            cancels += 1
            if work.cancelled() or cancels > _MAX_CANCELS:
                raise
            await asyncio.sleep(0)
