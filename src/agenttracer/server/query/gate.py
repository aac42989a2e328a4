"""Admission, execution and deadlines of the Query API's database work: reads that cannot deadlock.

Every piece of database work of a Query API request (its key check, its read) is a *job* handed to
``ReadGate.run``. The rules that keep the API available however many clients read at once:

* **One resource at a time.** A job runs on one of ``workers`` threads, and the read store has exactly
  ``workers`` connections (``open_store(..., connections=workers)``): a running job can always open its
  one read session at once, and it never waits for anything else while holding it. Between jobs a request
  holds nothing (no thread, no connection), so no set of requests can wait on each other.
* **A bounded queue in front.** At most ``queue`` jobs wait for a worker; one more is refused at once with
  :class:`Overloaded` (the app answers 503 with ``Retry-After``) instead of piling up. While the queue is
  full, :class:`Admission` answers new ``/v1`` requests that 503 before any routing, validation or key
  check, so a flood of refused requests costs the event loop (and ``/health`` behind it) little.
* **A deadline per request.** It starts when the request's first job is submitted and lasts
  ``deadline_s`` (the ``query_timeout_ms`` setting). A job still queued at the deadline never runs; a
  running one is stopped through its store session (``Reader.cancel``: a cancel request on PostgreSQL,
  an interrupt on SQLite; the session's ``should_stop`` is polled too where the backend can). The request
  is answered :class:`DeadlinePassed` right at the deadline.
* **A client that leaves stops its work** the same way (its queued job is skipped, its running
  statement cancelled): a disconnect is noticed by waiting on the request's ASGI ``receive``.

Sizes come from :func:`limits` (settings ``query_workers`` and ``query_queue``), so the pool, the workers
and the queue are derived from each other in one place. ``/health`` does not pass through here
(server/query/app.py gives it a small store of its own), so it never queues behind reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agenttracer.server.settings import Settings
from agenttracer.store.interface import Reader, Stopped, Store

T = TypeVar("T")

# Jobs allowed to wait per worker when ``query_queue`` is 0: at tens of milliseconds per read, a full
# queue drains in well under a second.
QUEUE_PER_WORKER = 8
_DEADLINE_KEY = "read_deadline"
_current = threading.local()  # the job a worker thread is running


class Overloaded(Exception):
    """The queue of waiting jobs is full: the request is refused before anything is done."""


class DeadlinePassed(Exception):
    """The request's deadline passed before its job finished (the job's work has been stopped)."""


class ClientGone(Exception):
    """The client closed the connection before its job finished (the job's work has been stopped)."""


@dataclass(frozen=True)
class Limits:
    """The Query API's concurrency sizes, derived from each other."""

    workers: int  # threads running jobs, and connections of the read store (one each)
    queue: int  # jobs waiting for a worker before a new one is refused
    deadline_s: float | None  # per request; None: no deadline


def limits(settings: Settings) -> Limits:
    """The sizes the settings ask for (``query_queue`` 0: ``QUEUE_PER_WORKER`` per worker)."""
    workers = max(1, settings.query_workers)
    queue = settings.query_queue if settings.query_queue > 0 else QUEUE_PER_WORKER * workers
    deadline = settings.query_timeout_ms / 1000 if settings.query_timeout_ms > 0 else None
    return Limits(workers=workers, queue=queue, deadline_s=deadline)


class Job(Generic[T]):
    """One piece of work: queued, then running on a worker, then done; stoppable at any point."""

    def __init__(self, fn: Callable[[Job[T]], T], deadline: float | None, store: Store) -> None:
        self._fn = fn
        self.deadline = deadline
        self._store = store
        self._stopped = False
        self._lock = threading.Lock()
        self._session: Reader | None = None  # the open read session, for a cancel
        self.connected = False  # whether the job opened a read session

    def should_stop(self) -> bool:
        """True once stopped or past the deadline (the read session polls this where it can)."""
        return self._stopped or (self.deadline is not None and time.monotonic() > self.deadline)

    def stop(self) -> None:
        """Stop the work: a queued job will not run, a running one has its statement cancelled."""
        self._stopped = True
        with self._lock:
            # Under the lock: the session is not handed back (and to another job) meanwhile.
            if self._session is not None:
                self._session.cancel()

    @contextlib.contextmanager
    def reader(self) -> Iterator[Reader]:
        """The job's one read session (opened on first use, closed when the block ends)."""
        try:
            with self._store.reader(self.should_stop) as session:
                self.connected = True
                with self._lock:
                    self._session = session
                try:
                    if self._stopped:  # stopped while opening: stop() saw no statement to cancel
                        raise DeadlinePassed()
                    yield session
                finally:
                    with self._lock:
                        self._session = None
        except Stopped:
            raise DeadlinePassed() from None

    def execute(self) -> T:
        if self.should_stop():
            raise DeadlinePassed()
        return self._fn(self)


class ReadGate:
    """The workers, the queue and the deadlines of one Query API app (module docstring: the rules)."""

    def __init__(self, store: Store, sizes: Limits) -> None:
        self.store = store
        self.limits = sizes
        self._executor = ThreadPoolExecutor(max_workers=sizes.workers, thread_name_prefix="query-read")
        self._lock = threading.Lock()
        self.waiting = 0  # jobs submitted and not yet started
        self.rejected = 0  # jobs refused because the queue was full (for tests and benchmarks)
        self.last_read_ok = -float("inf")  # time.monotonic() when a job last read the database without error

    def deadline(self, request: Request) -> float | None:
        """The request's deadline (time.monotonic), fixed when it first asks."""
        state = request.scope.setdefault("state", {})
        if _DEADLINE_KEY not in state:
            budget = self.limits.deadline_s
            state[_DEADLINE_KEY] = None if budget is None else time.monotonic() + budget
        deadline: float | None = state[_DEADLINE_KEY]
        return deadline

    async def run(self, request: Request, fn: Callable[[Job[T]], T]) -> T:
        """Run ``fn(job)`` on a worker within the request's deadline; ``job.reader()`` gives its read session.

        Raises :class:`Overloaded`, :class:`DeadlinePassed` or :class:`ClientGone` (work stopped), or what
        ``fn`` raised.
        """
        with self._lock:
            if self.waiting >= self.limits.queue:
                self.rejected += 1
                raise Overloaded()
            self.waiting += 1
        job: Job[T] = Job(fn, self.deadline(request), self.store)
        context = contextvars.copy_context()  # the request id reaches the worker's log records
        future = asyncio.wrap_future(self._executor.submit(context.run, self._start, job))
        gone: asyncio.Future[Any] = asyncio.ensure_future(_disconnected(request))
        try:
            timeout = None if job.deadline is None else max(0.0, job.deadline - time.monotonic())
            waiting: set[asyncio.Future[Any]] = {future, gone}
            done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if future in done:
                return future.result()
            job.stop()
            raise ClientGone() if gone in done else DeadlinePassed()
        finally:
            gone.cancel()
            if not future.done():
                job.stop()
                # Whatever the stopped work ends with, nobody waits for it any more.
                future.add_done_callback(_discard)

    def reject(self) -> None:
        """Count a request refused because the queue was full."""
        with self._lock:
            self.rejected += 1

    def _start(self, job: Job[T]) -> T:
        with self._lock:
            self.waiting -= 1
        _current.job = job
        try:
            result = job.execute()
            if job.connected:
                self.last_read_ok = time.monotonic()
            return result
        finally:
            _current.job = None

    @staticmethod
    def reader() -> contextlib.AbstractContextManager[Reader]:
        """The read session of the job running on this worker thread (for code that takes a ``reader``)."""
        job: Job[Any] | None = getattr(_current, "job", None)
        if job is None:
            raise RuntimeError("ReadGate.reader() outside a job")
        return job.reader()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (a GET's body is empty, so nothing else is read here)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _discard(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class Admission:
    """ASGI middleware: a ``/v1`` request arriving while the gate's queue is full gets ``refuse()`` at once."""

    def __init__(self, app: ASGIApp, gate: ReadGate, refuse: Callable[[], Response]) -> None:
        self.app = app
        self.gate = gate
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/") \
                and self.gate.waiting >= self.gate.limits.queue:
            self.gate.reject()
            await self.refuse()(scope, receive, send)
            return
        await self.app(scope, receive, send)
