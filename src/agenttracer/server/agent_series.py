"""The agent-level series, with a hard cap on their label combinations: what alerts on agent versions read.

Three families, kept by the ingest process from the events it stores (never from rejected ones):

- ``agenttracer_runs_finished_total{project, agent_id, agent_version, environment, status}``: run_end
  events accepted;
- ``agenttracer_run_failures_total{project, agent_id, agent_version, failure_type, failure_code}``:
  failure events accepted;
- ``agenttracer_step_latency_seconds{project, agent_id, agent_version, step_type}``: a histogram of
  accepted steps' latency, by step type from the fixed vocabulary (never by step name).

``project`` is the run's project, so one team's alerts and dashboards select its own series; it counts
towards the same cap as the other labels (a combination is a project, agent, version, … together).

Agent ids, versions and environments are chosen by whoever sends telemetry, so each family keeps at
most ``cap`` label combinations, ``other`` included. A new combination is kept while fewer than
``cap - 1`` are; at the cap, the least recently updated combination gives its place to the new one if
it has not been updated for ``idle_s`` seconds (its series then leaves ``/metrics``; should it come
back, it starts again from zero, which Prometheus reads as a counter reset). Otherwise the observation
is counted under ``other`` for every label and in ``agenttracer_agent_series_folded_total{metric}``.
So a burst of junk ids fills the cap for at most ``idle_s`` before real agents get their own series
again, and a process's memory and its scrape size stay bounded by the cap whatever the clients send.
The labels hold only stored values, which passed the privacy policy (an identity the policy refuses gets
its event rejected), and ``unknown`` for a run whose run_start has not arrived yet.

Counting is plain Python under one lock per batch (the histogram buckets are found with ``bisect``
before the lock); prometheus-client only renders the families at scrape time (``collect``). This
keeps the per-step cost on the ingest path to a few dictionary operations.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

OTHER = "other"
UNKNOWN = "unknown"
# Step latency buckets (seconds): from a fast tool call to a slow model call or retrieval.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
STEP_BOUNDS_MS = tuple(bound * 1000.0 for bound in STEP_BUCKETS)
RUNS = "agenttracer_runs_finished"
FAILURES = "agenttracer_run_failures"
STEPS = "agenttracer_step_latency_seconds"
RUN_LABELS = ("project", "agent_id", "agent_version", "environment", "status")
FAILURE_LABELS = ("project", "agent_id", "agent_version", "failure_type", "failure_code")
STEP_LABELS = ("project", "agent_id", "agent_version", "step_type")

Key = tuple[str, ...]
# How long a combination goes without an update before a new one may take its place at the cap.
DEFAULT_IDLE_S = 600


class _Capped:
    """The label combinations of one family and their values: at most ``cap``, the ``other`` one included."""

    def __init__(self, width: int, cap: int, idle_s: float, clock: Callable[[], float]) -> None:
        self.other: Key = (OTHER,) * width
        self.cap = cap
        self.idle_s = idle_s
        self._clock = clock
        # Combination -> when it was last updated, least recently updated first (``other`` is not in it).
        self._updated: OrderedDict[Key, float] = OrderedDict()
        self.values: dict[Key, Any] = {}
        self.folded = 0

    def admit(self, key: Key, n: int) -> Key:
        """The slot ``n`` observations of ``key`` go to: ``key`` itself when it is held, fits under the cap
        or can replace an idle combination; else ``other`` (counting ``n`` folded)."""
        now = self._clock()
        if key in self._updated:
            self._updated[key] = now
            self._updated.move_to_end(key)
            return key
        if len(self._updated) >= self.cap - 1 and self._updated:
            oldest, updated = next(iter(self._updated.items()))
            if now - updated >= self.idle_s:
                del self._updated[oldest]
                self.values.pop(oldest, None)
        if len(self._updated) < self.cap - 1:
            self._updated[key] = now
            return key
        self.folded += n
        return self.other


class AgentSeries(Collector):
    """The three families and their caps; ``record`` adds one batch, ``collect`` renders them."""

    def __init__(self, cap: int, idle_s: float = DEFAULT_IDLE_S, clock: Callable[[], float] = time.monotonic) -> None:
        if cap < 1:
            raise ValueError("the agent series cap must be at least 1")
        self.cap = cap
        self._lock = threading.Lock()
        self._runs_keys = _Capped(len(RUN_LABELS), cap, idle_s, clock)
        self._failure_keys = _Capped(len(FAILURE_LABELS), cap, idle_s, clock)
        self._step_keys = _Capped(len(STEP_LABELS), cap, idle_s, clock)
        self._runs: dict[Key, int] = self._runs_keys.values
        self._failures: dict[Key, int] = self._failure_keys.values
        # Per combination: non-cumulative bucket counts (the last one is +Inf), then the sum.
        self._steps: dict[Key, tuple[list[int], list[float]]] = self._step_keys.values

    @staticmethod
    def step_buckets() -> list[int]:
        return [0] * (len(STEP_BUCKETS) + 1)

    def record(
        self,
        runs: dict[Key, int],
        failures: dict[Key, int],
        steps: dict[Key, tuple[list[int], float]],
    ) -> None:
        """Add one batch's counts, each already summed per label combination by the caller."""
        with self._lock:
            _add_counts(self._runs, self._runs_keys, runs)
            _add_counts(self._failures, self._failure_keys, failures)
            for key, (buckets, total) in steps.items():
                n = sum(buckets)
                slot = self._step_keys.admit(key, n)
                held = self._steps.get(slot)
                if held is None:
                    self._steps[slot] = (list(buckets), [total])
                    continue
                counts, sums = held
                for i, c in enumerate(buckets):
                    if c:
                        counts[i] += c
                sums[0] += total

    def series_counts(self) -> dict[str, int]:
        """Label combinations held per family (each at most the cap)."""
        with self._lock:
            return {RUNS: len(self._runs), FAILURES: len(self._failures), STEPS: len(self._steps)}

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            runs = list(self._runs.items())
            failures = list(self._failures.items())
            steps = [(k, list(c), s[0]) for k, (c, s) in self._steps.items()]
            folded = {
                RUNS: self._runs_keys.folded,
                FAILURES: self._failure_keys.folded,
                STEPS: self._step_keys.folded,
            }
        family = CounterMetricFamily(
            RUNS, "Runs whose run_end was stored, by project, agent, version, environment and status.",
            labels=RUN_LABELS,
        )
        for key, value in runs:
            family.add_metric(key, value)
        yield family
        family = CounterMetricFamily(
            FAILURES, "Run failures stored, by project, agent, version, failure type and code.", labels=FAILURE_LABELS
        )
        for key, value in failures:
            family.add_metric(key, value)
        yield family
        histogram = HistogramMetricFamily(STEPS, "Latency of stored steps, by project, agent, version and step type.",
                                          labels=STEP_LABELS)
        bounds = [*(repr(b) for b in STEP_BUCKETS), "+Inf"]
        for key, counts, total in steps:
            histogram.add_metric(key, list(zip(bounds, _cumulative(counts), strict=True)), total)
        yield histogram
        family = CounterMetricFamily(
            "agenttracer_agent_series_folded",
            "Observations counted under 'other' because their family already held its cap of label combinations.",
            labels=("metric",),
        )
        for name, value in folded.items():
            family.add_metric((name,), value)
        yield family


def _add_counts(into: dict[Key, int], capped: _Capped, counts: dict[Key, int]) -> None:
    for key, n in counts.items():
        slot = capped.admit(key, n)
        into[slot] = into.get(slot, 0) + n


def _cumulative(counts: list[int]) -> Iterator[int]:
    running = 0
    for c in counts:
        running += c
        yield running


def bucket_of(latency_ms: float) -> int:
    """Index of the step bucket a latency in milliseconds (the unit events carry) falls in; ``le``
    semantics: a bound is inclusive. The ingest path does the same per batch with ``STEP_BOUNDS_MS``."""
    return bisect_left(STEP_BOUNDS_MS, latency_ms)
