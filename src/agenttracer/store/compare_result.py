"""What ``GET /v1/compare`` answers: the comparison's result types, filled by ``store/sql/read/compare.py``.

Every metric is given for both versions with candidate − base (``Delta``, ``PercentileDelta``) and the
significance test that decides whether the difference is real (``stats_math.TestResult``). The Query
API serialises these dataclasses as they are, so their fields are the response's fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agenttracer.store.results import Percentiles
from agenttracer.store.stats_math import TestResult


@dataclass(frozen=True)
class Delta:
    """One scalar metric for both versions; ``delta`` = candidate − base, ``relative`` = delta / base."""

    base: float | None
    candidate: float | None
    delta: float | None
    relative: float | None
    test: TestResult | None

    @classmethod
    def of(cls, base: float | None, candidate: float | None, test: TestResult | None) -> Delta:
        delta = None if base is None or candidate is None else candidate - base
        relative = None if delta is None or not base else delta / base
        return cls(base, candidate, delta, relative, test)


@dataclass(frozen=True)
class PercentileDelta:
    base: Percentiles
    candidate: Percentiles
    delta: Percentiles
    test: TestResult

    @classmethod
    def of(cls, base: Percentiles, candidate: Percentiles, test: TestResult) -> PercentileDelta:
        def d(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else b - a

        delta = Percentiles(d(base.p50, candidate.p50), d(base.p95, candidate.p95), d(base.p99, candidate.p99))
        return cls(base, candidate, delta, test)


@dataclass(frozen=True)
class VersionSide:
    version: str
    runs: int
    finished_runs_in_window: int
    sampled: bool
    running_runs: int
    status_counts: dict[str, int]
    success_rate: float | None
    failure_rate: float | None
    run_latency_ms: Percentiles
    steps: int
    steps_per_run: float | None
    retry_steps: int
    retry_rate: float | None
    runs_with_retries: int
    run_retry_rate: float | None


@dataclass(frozen=True)
class FailureMixRow:
    failure_type: str
    failure_code: str
    base_count: int
    candidate_count: int
    rate: Delta


@dataclass(frozen=True)
class StepTypeComparison:
    step_type: str
    base_count: int
    candidate_count: int
    latency_ms: PercentileDelta
    error_rate: Delta


@dataclass(frozen=True)
class ShapeRow:
    shape: list[str]
    base_count: int
    candidate_count: int
    share: Delta


@dataclass(frozen=True)
class Comparison:
    agent_id: str
    environment: str | None
    since: datetime | None
    until: datetime | None
    alpha: float
    min_sample: int
    min_expected: float
    base: VersionSide
    candidate: VersionSide
    success_rate: Delta
    failure_rate: Delta
    run_latency_ms: PercentileDelta
    steps_per_run: Delta
    retry_rate: Delta
    run_retry_rate: Delta
    failure_mix: list[FailureMixRow]
    step_types: list[StepTypeComparison]
    shapes: list[ShapeRow]
    significant: list[str]
