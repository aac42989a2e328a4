"""A daemon thread that runs one maintenance pass every few seconds: the base of the ingest process's
background workers (retention in ``store/write/retention.py``, the rollup refresher in ``store/rollup/refresh.py``).

``start()`` and ``stop()`` are idempotent; ``stop()`` interrupts the wait, sets the event a pass may poll
(``self._stop.is_set``) to end early after the unit of work in flight commits, and joins the thread. A
failed pass is logged and never kills the worker: the next one retries.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Generic, TypeVar

R = TypeVar("R")
W = TypeVar("W", bound="PeriodicWorker[Any]")


class PeriodicWorker(Generic[R]):
    """Subclasses implement ``_pass()``; ``run_once()`` runs it now and remembers the result."""

    thread_name = "agenttracer-worker"
    log = logging.getLogger("agenttracer")

    def __init__(self, *, interval_s: float, first_delay_s: float) -> None:
        self.interval_s = interval_s
        self.first_delay_s = first_delay_s
        self.passes = 0
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

    def _loop(self) -> None:
        delay = self.first_delay_s
        while not self._stop.wait(delay):
            try:
                self.run_once()
            except Exception:  # a failed pass must not kill the worker; the next one retries
                self.log.exception("%s: pass failed", self.thread_name)
            delay = self.interval_s
