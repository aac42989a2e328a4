"""The sums a rollup is made of: ``RunAgg`` (a bucket's runs), ``StepAgg`` (a bucket's steps of one type
and name) and ``Aggregates`` (those sums keyed by identity and bucket). ``store/sql/rollup/build.py`` computes
and reads them; the refresher, the live refresher and the stats reader add and subtract them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agenttracer.store.agent_pages import later_of
from agenttracer.store.histogram import Histogram

Key = tuple[Any, ...]


@dataclass(slots=True)
class RunAgg:
    runs: int = 0
    running: int = 0
    success: int = 0
    failure: int = 0
    partial: int = 0
    steps: int = 0
    retry_steps: int = 0
    runs_with_retries: int = 0
    run_time_ms: float = 0.0
    last_started_at: datetime | None = None
    hist: Histogram = field(default_factory=Histogram)

    COUNTERS = ("runs", "running", "success", "failure", "partial", "steps", "retry_steps", "runs_with_retries",
                "run_time_ms")

    def add(self, other: RunAgg) -> None:
        # Spelled out: this runs for every (group, level) the refresher writes.
        self.runs += other.runs
        self.running += other.running
        self.success += other.success
        self.failure += other.failure
        self.partial += other.partial
        self.steps += other.steps
        self.retry_steps += other.retry_steps
        self.runs_with_retries += other.runs_with_retries
        self.run_time_ms += other.run_time_ms
        self.last_started_at = later_of(self.last_started_at, other.last_started_at)
        self.hist.add(other.hist)

    def status_count(self, status: str) -> int:
        return int(getattr(self, status))


@dataclass(slots=True)
class StepAgg:
    steps: int = 0
    errors: int = 0
    retries: int = 0
    latency_ms: float = 0.0
    retry_latency_ms: float = 0.0
    # Self time (store/self_time.py) of the steps in finished runs with a duration: the numerator of
    # the share of run time.
    self_ms: float = 0.0
    hist: Histogram = field(default_factory=Histogram)

    COUNTERS = ("steps", "errors", "retries", "latency_ms", "retry_latency_ms", "self_ms")

    def add(self, other: StepAgg) -> None:
        self.steps += other.steps
        self.errors += other.errors
        self.retries += other.retries
        self.latency_ms += other.latency_ms
        self.retry_latency_ms += other.retry_latency_ms
        self.self_ms += other.self_ms
        self.hist.add(other.hist)

    def subtract(self, other: StepAgg) -> bool:
        """Take away steps counted here before (an hour's rest from its rollup); False, leaving this
        changed, when ``other`` is not part of this (a count would go negative)."""
        self.steps -= other.steps
        self.errors -= other.errors
        self.retries -= other.retries
        self.latency_ms -= other.latency_ms
        self.retry_latency_ms -= other.retry_latency_ms
        self.self_ms -= other.self_ms
        # A difference of float sums is not exactly 0 where nothing is left: make it so.
        if not self.retries:
            self.retry_latency_ms = 0.0
        if not self.steps:
            self.latency_ms = self.self_ms = 0.0
        return min(self.steps, self.errors, self.retries) >= 0 and self.hist.subtract(other.hist)


@dataclass
class Aggregates:
    """Keyed sums: runs by key, failures by key + (type, code), steps by step key + (type, name)."""

    runs: dict[Key, RunAgg] = field(default_factory=dict)
    failures: dict[Key, int] = field(default_factory=dict)
    steps: dict[Key, StepAgg] = field(default_factory=dict)
