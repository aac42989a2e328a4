"""Single-flight for the Query API's expensive reads: identical requests at the same moment share one computation.

A dashboard's views, and several open dashboards, ask ``GET /v1/stats`` the same question at the same moment
(the UI floors its default window's ``since`` to the minute, so the query is identical for a minute).
Each answer costs tens of milliseconds of CPU in this process, and concurrent answers compete for the
same cores (and the GIL): four identical requests computed side by side take about four times as long as one.
``SingleFlight.run(key, compute)`` lets them share:

* a request whose key has no computation in flight starts one (it *leads*);
* a request arriving while an identical computation is *queued* (not started yet) joins it: that
  computation starts after the request arrived, so the answer is as fresh as one of its own;
* a request arriving while an identical computation is *running* joins it only if it started at most
  ``join_window_s`` (JOIN_WINDOW_S) before: the answer then reflects the database as of up to that long before
  the request arrived — the documented staleness bound (docs/performance.md), far below what anyone can see on
  a dashboard and below the live rollups' own two-second cadence. Later arrivals queue a new computation that
  starts when the running one ends (at most one running and one queued per key), so no answer is ever older.

An exception in the computation is raised to every request that shared it (each gets the same error answer it
would have got alone, e.g. the 503 of a query timeout). Keys must be hashable and say everything the answer
depends on (the filters); memory is bounded by the keys in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

# The staleness bound: how long after a computation started an identical request may still share it.
JOIN_WINDOW_S = 0.05


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "result", "started_at")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.started_at: float | None = None  # monotonic; None while queued
        self.result: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class SingleFlight(Generic[T]):
    """Shares one computation among identical concurrent calls (module docstring: the rules and the bound)."""

    def __init__(self, join_window_s: float = JOIN_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.join_window_s = join_window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[Hashable, _Flight[T]] = {}
        self._queued: dict[Hashable, _Flight[T]] = {}
        self.computations = 0  # how many computations ran (for tests and benchmarks)
        self.shared = 0  # how many calls were answered by another call's computation

    def run(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            queued = self._queued.get(key)
            running = self._running.get(key)
            if queued is not None:
                self.shared += 1
                flight, lead = queued, False
            elif running is not None and running.started_at is not None \
                    and self._clock() - running.started_at <= self.join_window_s:
                self.shared += 1
                flight, lead = running, False
            elif running is not None:
                flight = self._queued[key] = _Flight()
                lead = True
            else:
                flight = self._running[key] = _Flight()
                flight.started_at = self._clock()
                running, lead = None, True
        if not lead:
            return flight.outcome()
        if running is not None:
            # Queued behind a computation that began too long ago to share: start when it ends.
            running.done.wait()
            with self._lock:
                del self._queued[key]
                self._running[key] = flight
                flight.started_at = self._clock()
        try:
            flight.result = compute()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self.computations += 1
                if self._running.get(key) is flight:
                    del self._running[key]
            flight.done.set()
        return flight.result
