"""A daemon thread that runs one maintenance pass every few seconds: the base of the ingest process's
background workers on every store (retention, the abandoned-run sweep and the rollup refresher of
``store/sql`` and ``store/clickhouse``).

``start()`` and ``stop()`` are idempotent; ``stop()`` interrupts the wait, sets the event a pass may poll
(``self._stop.is_set``) to end early after the unit of work in flight commits, and joins the thread.

A failed pass never kills the worker: the next one retries, after a back-off that doubles with each
failure in a row (from the interval up to ``MAX_BACKOFF_S``). Each failing pass logs ONE line — the
exception's class, where it was raised and the driver's SQLSTATE (``agenttracer.diagnostics``) — and
never a traceback or the exception's message, which for a database error quote the statement's
parameters and so stored values. The first pass that succeeds again says so.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Generic, TypeVar

from agenttracer.diagnostics import describe_exception

R = TypeVar("R")
W = TypeVar("W", bound="PeriodicWorker[Any]")

# The longest wait between two passes while they keep failing (a pass scheduled less often keeps its own
# interval): a database down for an hour costs a few dozen log lines, not thousands.
MAX_BACKOFF_S = 60.0


class PeriodicWorker(Generic[R]):
    """Subclasses implement ``_pass()``; ``run_once()`` runs it now and remembers the result."""

    thread_name = "agenttracer-worker"
    log = logging.getLogger("agenttracer")

    def __init__(self, *, interval_s: float, first_delay_s: float) -> None:
        self.interval_s = interval_s
        self.first_delay_s = first_delay_s
        self.passes = 0
        # Failed passes in a row (0 after a pass that succeeded).
        self.failures = 0
        self.last_result: R | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _pass(self) -> R:
        raise NotImplementedError

    def start(self: W) -> W:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_once(self) -> R:
        result = self._pass()
        self.passes += 1
        self.last_result = result
        return result

    def backoff_s(self) -> float:
        """The wait before the next pass: the interval, doubled for each failed pass in a row, capped."""
        if not self.failures:
            return self.interval_s
        return max(self.interval_s, min(self.interval_s * 2.0**self.failures, MAX_BACKOFF_S))

    def _loop(self) -> None:
        delay = self.first_delay_s
        while not self._stop.wait(delay):
            self.run_guarded()
            delay = self.backoff_s()

    def run_guarded(self) -> None:
        """One pass that never raises: a failure is counted and summed up in one log line."""
        try:
            self.run_once()
        except Exception as exc:  # a failed pass must not kill the worker; the next one retries
            self.failures += 1
            self.log.warning("%s: pass failed (%s; %d in a row); next pass in %.0f s", self.thread_name,
                             describe_exception(exc), self.failures, self.backoff_s())
            return
        if self.failures:
            self.log.warning("%s: pass succeeded after %d failed passes", self.thread_name, self.failures)
            self.failures = 0
