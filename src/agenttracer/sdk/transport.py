"""Background delivery: a bounded queue, one daemon worker, batching, gzip, retries — and honest counts.

The agent's thread only calls ``Transport.offer(record)``, which appends the record (``sdk/encode.py``)
to a ``collections.deque`` (``append`` and ``popleft`` are atomic in CPython) after checking its length
against the limit, or counts a drop. It never takes a lock, never waits and never does I/O. Everything
else happens in the worker thread:

* batches of at most ``batch_size`` events, sent when that many are waiting or ``flush_interval``
  seconds after the last send, or at once when someone calls ``flush``;
* retries for 429 / 502 / 503 / 504, timeouts and connection errors (until shutdown), and for 500 at
  most ``MAX_SERVER_ERROR_RETRIES`` times (a server bug, not bad data), honouring ``Retry-After``
  (capped at 60 s) or else exponential backoff with jitter; 400 / 401 / 403 / 413 / 422 and every other
  status are final and their events counted as dropped (``http_<status>``, also for a 500 whose
  retries ran out);
* per-event results from the Ingest API (see ``agenttracer.server.ingest``): ``accepted`` and
  ``duplicate`` count as delivered, ``rejected`` as dropped — also in a 422 where every event was
  rejected.

Overflow: when the queue holds ``limit`` events, new steps are dropped (``queue_full``); run starts,
run ends and failures may still use a reserve of ``run_reserve`` extra slots, so a run stays
complete while its steps are being shed. Memory is therefore bounded whatever the backend does.

Accounting: ``produced = delivered + dropped + queued + in flight`` at every moment, and after
``shutdown`` nothing is queued or in flight, so ``delivered + dropped == produced``.
"""

from __future__ import annotations

import atexit
import gzip
import logging
import os
import threading
import time
import weakref
from collections import Counter, deque
from typing import Any

import httpx

from agenttracer._version import __version__
from agenttracer.model import PROJECT_HEADER
from agenttracer.sdk.config import TracerConfig
from agenttracer.sdk.counts import DeliveryStats, DropCounter
from agenttracer.sdk.encode import Encoder, Record
from agenttracer.sdk.sending import (
    GZIP_LEVEL,
    MAX_SERVER_ERROR_RETRIES,
    YIELD_EVERY,
    backoff_delay,
    dumps_batch,
    post_batch,
    yield_gil,
)

log = logging.getLogger("agenttracer")

class Transport:
    """Owns the queue, the worker thread and the counters of one tracer."""

    def __init__(self, config: TracerConfig) -> None:
        self._config = config
        self._reset_state()
        _LIVE.add(self)
        self._start_worker()

    # ------------------------------------------------------------------ state

    def _reset_state(self) -> None:
        """Fresh queue, locks and counters (at construction and in a forked child)."""
        config = self._config
        self._queue: deque[Record] = deque()
        self._limit = config.max_queue_size
        self._run_limit = config.max_queue_size + max(100, config.max_queue_size // 10)
        self._wake_at = config.batch_size
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cond = threading.Condition(threading.Lock())
        self._taken = 0  # events the worker has taken off the queue
        self._finalized = 0  # of those, how many are now delivered or dropped
        # Events dropped before they entered the queue, counted on the agent's thread without a lock;
        # ``_drop`` counts one with the counter in force: ``queue_full`` until shutdown, ``closed`` after.
        self._queue_full = DropCounter()
        self._closed_drops = DropCounter()
        self._drop = self._queue_full.add
        self._delivered = 0
        self._dropped: Counter[str] = Counter()
        self._retried = 0
        self._flush_target = 0
        self._deadline: float | None = None
        self._closed = False
        self._encoder = Encoder()  # used by the worker only; its tallies are merged under the lock
        self._removed: Counter[str] = Counter()
        self._coerced: Counter[str] = Counter()
        self._worker: threading.Thread | None = None

    def _start_worker(self) -> None:
        # The HTTP client is built here, on the constructing thread: httpx imports httpcore lazily when a
        # client is made, and an import running in the worker at the moment of a fork() would leave the
        # child with a half-initialised module. Plain http:// involves no TLS (redirects are not followed),
        # so the CA bundle, which costs tens of milliseconds of CPU to load, is loaded only for https://.
        client = httpx.Client(headers=self._headers(), verify=self._config.api_url.startswith("https://"))
        self._worker = threading.Thread(target=self._run, args=(client,), name="agenttracer-delivery",
                                        daemon=True)
        self._worker.start()

    # ------------------------------------------------------------ agent side

    def offer(self, record: Record, reserved: bool = False) -> None:
        """Queue one record, or count it as dropped when the queue is full (or the tracer shut down).

        Steps are offered plainly; run starts, run ends and failures as ``reserved``, which may use
        the reserve beyond the limit so that a run stays complete while its steps are shed.
        """
        queue = self._queue
        size = len(queue)
        if size < self._limit or (reserved and size < self._run_limit):
            queue.append(record)
            if size == self._wake_at:
                self._wake.set()
        else:
            self._drop()

    def _overflow_counts(self) -> dict[str, int]:
        counts = {"queue_full": self._queue_full.read(), "closed": self._closed_drops.read()}
        return {reason: n for reason, n in counts.items() if n}

    # ----------------------------------------------------------- public API

    def stats(self) -> DeliveryStats:
        with self._cond:
            queued = len(self._queue)
            overflow = self._overflow_counts()
            dropped = Counter(self._dropped)
            dropped.update(overflow)
            return DeliveryStats(
                produced=self._taken + queued + sum(overflow.values()),
                delivered=self._delivered,
                dropped=dict(dropped),
                retried=self._retried,
                queued=queued,
                in_flight=self._taken - self._finalized,
                removed=dict(self._removed),
                coerced=dict(self._coerced),
            )

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued now is delivered or dropped; False if ``timeout`` ran out first."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            target = self._taken + len(self._queue)
            if self._finalized >= target:
                return True
            self._flush_target = max(self._flush_target, target)
        self._wake.set()
        with self._cond:
            while self._finalized < target and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._finalized >= target

    def begin_shutdown(self, deadline: float) -> None:
        """Tell the worker to deliver what it can until ``deadline`` (time.monotonic) and then stop."""
        with self._cond:
            if self._closed:
                return
            self._deadline = deadline if self._deadline is None else min(self._deadline, deadline)
        self._stop.set()
        self._wake.set()

    def finish_shutdown(self, deadline: float) -> None:
        """Wait for the worker until ``deadline``, then count whatever is left as dropped (``shutdown``)."""
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            if self._closed:
                return
            # From now on every new event takes the overflow path and is counted as ``closed``.
            self._closed = True
            self._drop = self._closed_drops.add
            self._limit = 0
            self._run_limit = 0
            left = 0
            while True:
                try:
                    self._queue.popleft()
                except IndexError:
                    break
                left += 1
            self._taken += left
            unfinished = self._taken - self._finalized
            if unfinished:
                self._dropped["shutdown"] += unfinished
                self._finalized = self._taken
            self._cond.notify_all()

    def shutdown(self, timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        self.begin_shutdown(deadline)
        self.finish_shutdown(deadline)

    # --------------------------------------------------------------- worker

    def _finalize(self, delivered: int, dropped: dict[str, int]) -> None:
        with self._cond:
            if self._closed:  # shutdown already counted this batch as dropped
                return
            self._delivered += delivered
            for reason, count in dropped.items():
                if count:
                    self._dropped[reason] += count
            self._finalized += delivered + sum(dropped.values())
            self._cond.notify_all()

    def _take(self) -> list[Record] | None:
        """The next batch, waiting for it when there is no hurry; None when the worker should stop."""
        batch_size = self._config.batch_size
        while True:
            stopping = self._stop.is_set()
            if stopping:
                if not self._queue or self._remaining() <= 0:
                    return None
            elif len(self._queue) < batch_size and self._finalized >= self._flush_target:
                self._wake.wait(self._config.flush_interval)
                self._wake.clear()
            items: list[Record] = []
            popleft = self._queue.popleft
            try:
                while len(items) < batch_size:
                    items.append(popleft())
            except IndexError:
                pass
            if items:
                with self._cond:
                    self._taken += len(items)
                    if self._closed:  # shutdown gave up while we were taking these: count them, stop
                        self._finalized += len(items)
                        self._dropped["shutdown"] += len(items)
                        return None
                return items

    def _remaining(self) -> float:
        deadline = self._deadline
        return float("inf") if deadline is None else deadline - time.monotonic()

    def _run(self, client: httpx.Client) -> None:
        try:
            while True:
                items = self._take()
                if items is None:
                    return
                try:
                    self._deliver(client, items)
                except Exception as exc:  # never let one bad batch kill delivery for the rest of the process
                    # Class name only: an exception's message may quote agent data, which must not reach logs.
                    log.error("agenttracer: internal error while delivering a batch (%s)", type(exc).__name__)
                    with self._cond:
                        lost = self._taken - self._finalized
                    self._finalize(0, {"internal_error": lost})
        finally:
            client.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip",
                   "User-Agent": f"agenttracer-python/{__version__}"}
        if self._config.api_key:
            headers["Authorization"] = f"Bearer {self._config.api_key}"
        if self._config.project:
            headers[PROJECT_HEADER] = self._config.project
        return headers

    def _deliver(self, client: httpx.Client, items: list[Record]) -> None:
        events: list[dict[str, Any]] = []
        unsendable: Counter[str] = Counter()
        for index, item in enumerate(items):
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                yield_gil()
            try:
                event, reason = self._encoder.encode(item)
            except Exception as exc:
                log.error("agenttracer: could not encode an event (%s)", type(exc).__name__)
                event, reason = None, "internal_error"
            if event is None:
                unsendable[reason or "internal_error"] += 1
            else:
                events.append(event)
        encoder = self._encoder
        if encoder.removed or encoder.coerced:
            with self._cond:
                self._removed.update(encoder.removed)
                self._coerced.update(encoder.coerced)
            encoder.removed.clear()
            encoder.coerced.clear()
        if unsendable:
            self._finalize(0, dict(unsendable))
        if not events:
            return
        body = gzip.compress(dumps_batch(events), GZIP_LEVEL)
        attempt = 0
        limited_retries = 0
        while True:
            remaining = self._remaining()
            if remaining <= 0:
                self._finalize(0, {"shutdown": len(events)})
                return
            outcome = post_batch(client, self._config.ingest_url, body, len(events),
                                 min(self._config.timeout, remaining))
            if not outcome.retryable:
                self._finalize(outcome.delivered, outcome.dropped)
                return
            if outcome.limited is not None:
                limited_retries += 1
                if limited_retries > MAX_SERVER_ERROR_RETRIES:
                    self._finalize(0, {outcome.limited: len(events)})
                    return
            if outcome.retry_after is not None:
                delay = outcome.retry_after
            else:
                delay = backoff_delay(attempt, self._config.max_backoff)
            attempt += 1
            with self._cond:
                self._retried += 1
            if self._stop.is_set():
                if delay >= self._remaining():
                    self._finalize(0, {"shutdown": len(events)})
                    return
                time.sleep(delay)
            else:
                # A shutdown wakes us early; the loop then re-checks the deadline.
                self._stop.wait(delay)


# ------------------------------------------------------------- process hooks

_LIVE: weakref.WeakSet[Transport] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent's worker thread does not exist here, and its locks may have been held at fork time:
    # start over with an empty queue, new locks, new counters and a new worker (and a new HTTP client,
    # so no socket is shared with the parent).
    for transport in list(_LIVE):
        if not transport._closed:
            transport._reset_state()
            transport._start_worker()


def _at_exit() -> None:
    transports = [t for t in list(_LIVE) if not t._closed]
    if not transports:
        return
    deadline = time.monotonic() + max(t._config.exit_timeout for t in transports)
    for transport in transports:
        transport.begin_shutdown(deadline)
    for transport in transports:
        transport.finish_shutdown(deadline)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
