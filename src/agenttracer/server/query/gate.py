"""Admission, execution and deadlines of the Query API's database work: reads that cannot deadlock.

Every piece of database work of a Query API request (its key check, its read) is a *job* handed to
``ReadGate.run``. The rules that keep the API available however many clients read at once:

* **One resource at a time.** A job runs on one of ``workers`` threads, and the read engine's pool has
  exactly ``workers`` connections (``max_overflow=0``): a running job can always check out its one
  connection at once, and it never waits for anything else while holding it. Between jobs a request
  holds nothing (no thread, no connection), so no set of requests can wait on each other.
* **A bounded queue in front.** At most ``queue`` jobs wait for a worker; one more is refused at once with
  :class:`Overloaded` (the app answers 503 with ``Retry-After``) instead of piling up. While the queue is
  full, :class:`Admission` answers new ``/v1`` requests that 503 before any routing, validation or key
  check, so a flood of refused requests costs the event loop (and ``/health`` behind it) little.
* **A deadline per request.** It starts when the request's first job is submitted and lasts
  ``deadline_s`` (the ``query_timeout_ms`` setting). A job still queued at the deadline never runs; a
  running one is stopped: PostgreSQL gets a cancel request, SQLite's progress handler interrupts the
  statement. The request is answered :class:`DeadlinePassed` right at the deadline.
* **A client that leaves stops its work** the same way (its queued job is skipped, its running
  statement cancelled): a disconnect is noticed by waiting on the request's ASGI ``receive``.

Sizes come from :func:`limits` (settings ``query_workers`` and ``query_queue``), so the pool, the workers
and the queue are derived from each other in one place. ``/health`` does not pass through here
(server/query/app.py gives it its own connection), so it never queues behind reads.
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

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agenttracer.server.settings import Settings
from agenttracer.store.sql.dialect import SQLITE

T = TypeVar("T")

# Jobs allowed to wait per worker when ``query_queue`` is 0: at tens of milliseconds per read, a full
# queue drains in well under a second.
QUEUE_PER_WORKER = 8
# SQLite calls the progress handler every this many virtual-machine instructions (~0.1 ms of work).
PROGRESS_EVERY = 2_000
# A PostgreSQL cancel request is a short-lived connection of its own; past this it is given up.
CANCEL_TIMEOUT_S = 2.0
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

    workers: int  # threads running jobs, and connections in the read engine's pool (one each)
    queue: int  # jobs waiting for a worker before a new one is refused
    deadline_s: float | None  # per request; None: no deadline

    def engine_options(self) -> dict[str, Any]:
        """Pool options for the read engine: one connection per worker, never more, never a wait."""
        return {"pool_size": self.workers, "max_overflow": 0, "pool_timeout": 5}


def limits(settings: Settings) -> Limits:
    """The sizes the settings ask for (``query_queue`` 0: ``QUEUE_PER_WORKER`` per worker)."""
    workers = max(1, settings.query_workers)
    queue = settings.query_queue if settings.query_queue > 0 else QUEUE_PER_WORKER * workers
    deadline = settings.query_timeout_ms / 1000 if settings.query_timeout_ms > 0 else None
    return Limits(workers=workers, queue=queue, deadline_s=deadline)


class Job(Generic[T]):
    """One piece of work: queued, then running on a worker, then done; stoppable at any point."""

    def __init__(self, fn: Callable[[Job[T]], T], deadline: float | None, engine: sa.Engine) -> None:
        self._fn = fn
        self.deadline = deadline
        self._engine = engine
        self._stopped = False
        self._lock = threading.Lock()
        self._dbapi: Any = None  # the running statement's driver connection, for a cancel request
        self.connected = False  # whether the job checked out a connection

    def should_stop(self) -> bool:
        """True once stopped or past the deadline (SQLite's progress handler asks this)."""
        return self._stopped or (self.deadline is not None and time.monotonic() > self.deadline)

    def stop(self) -> None:
        """Stop the work: a queued job will not run, a running PostgreSQL statement gets a cancel request."""
        self._stopped = True
        if self._dbapi is not None and hasattr(self._dbapi, "cancel_safe"):
            # The cancel request opens a connection of its own: not on the event loop.
            threading.Thread(target=self._cancel, name="query-cancel", daemon=True).start()

    def _cancel(self) -> None:
        with self._lock:
            # Under the lock: the connection is not handed back to the pool (and to another job) meanwhile.
            if self._dbapi is not None:
                with contextlib.suppress(Exception):
                    self._dbapi.cancel_safe(timeout=CANCEL_TIMEOUT_S)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """The job's one connection (checked out on first use, returned when the job ends)."""
        with self._engine.connect() as conn:
            self.connected = True
            dbapi = conn.connection.dbapi_connection
            if self._engine.dialect.name == SQLITE:
                dbapi.set_progress_handler(self.should_stop, PROGRESS_EVERY)  # type: ignore[union-attr]
            with self._lock:
                self._dbapi = dbapi
            try:
                if self._stopped:  # stopped while connecting: stop() saw no statement to cancel
                    raise DeadlinePassed()
                yield conn
            finally:
                with self._lock:
                    self._dbapi = None
                if self._engine.dialect.name == SQLITE:
                    dbapi.set_progress_handler(None, PROGRESS_EVERY)  # type: ignore[union-attr]

    def execute(self) -> T:
        if self.should_stop():
            raise DeadlinePassed()
        return self._fn(self)


class ReadGate:
    """The workers, the queue and the deadlines of one Query API app (module docstring: the rules)."""

    def __init__(self, engine: sa.Engine, sizes: Limits) -> None:
        self.engine = engine
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
        """Run ``fn(job)`` on a worker within the request's deadline; ``job.connect()`` gives its connection.

        Raises :class:`Overloaded`, :class:`DeadlinePassed` or :class:`ClientGone` (work stopped), or what
        ``fn`` raised.
        """
        with self._lock:
            if self.waiting >= self.limits.queue:
                self.rejected += 1
                raise Overloaded()
            self.waiting += 1
        job: Job[T] = Job(fn, self.deadline(request), self.engine)
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
    def connect() -> contextlib.AbstractContextManager[sa.Connection]:
        """The connection of the job running on this worker thread (for code that takes a ``connect``)."""
        job: Job[Any] | None = getattr(_current, "job", None)
        if job is None:
            raise RuntimeError("ReadGate.connect() outside a job")
        return job.connect()

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
