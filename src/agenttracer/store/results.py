"""What the stats reads answer, in every store: run statistics, the per-step breakdown, percentiles.

Definitions every store keeps (repeated in the API field descriptions):

* Rates and run latency are over *finished* runs (status other than ``running``): a running run
  has no outcome and no duration yet. Counts by status include running runs.
* A *retry step* is a step with ``attempt > 1``: a new attempt of an earlier step. Retry rate is
  retry steps / all steps; run retry rate is runs with at least one retry / all runs. Time in
  retries is the summed latency of retry steps.
* Per-step numbers (step types and names, top failing steps, time in retries) read the steps of the
  newest STEP_SAMPLE_RUNS matching runs when more runs match; the answer says so.
* Share of run time: the summed *self time* of a group's steps in finished runs divided by the summed
  duration of those runs (nested steps are not counted again in their parents, parallel steps split
  the time they share; ``store/sql/rollup/selftime.py``). The step types' shares plus the untraced
  share (time in which no step ran) add up to 1.
* Percentiles are exact (``percentile_cont``, linear interpolation, ``store/stats_math.py``) unless
  ``latency_exact`` is False: then they come from mergeable histograms (``store/histogram.py``) and are
  within its RELATIVE_ERROR. Counts are always exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles in milliseconds (None when there is no value to rank)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Percentiles:
        return cls(*values)


STEP_SAMPLE_RUNS = 5_000
TOP_FAILING_STEPS = 10
STEP_NAME_LIMIT = 100


@dataclass(frozen=True)
class FailingStep:
    step_type: str
    name: str
    error_count: int
    count: int
    error_rate: float


@dataclass(frozen=True)
class StepGroupStats:
    step_type: str
    name: str | None
    count: int
    error_count: int
    error_rate: float
    retry_count: int
    latency_ms: Percentiles
    total_latency_ms: float
    self_time_ms: float  # of the group's steps in finished runs (store/sql/rollup/selftime.py)
    share_of_run_time: float | None  # self_time_ms / the runs' summed duration


@dataclass(frozen=True)
class StepBreakdown:
    types: list[StepGroupStats]
    names: list[StepGroupStats]
    names_truncated: bool
    top_failing: list[FailingStep]
    retry_time_ms: float
    step_time_ms: float
    sample_runs: int
    sampled: bool
    run_time_ms: float  # the attribution denominator: summed duration of the finished runs covered
    untraced_ms: float  # the part of run_time_ms no step's self time covers


def untraced(run_time_ms: float, self_times: list[float]) -> float:
    """The run time left when every step type's self time is taken out (never below 0 by float rounding)."""
    return max(0.0, run_time_ms - sum(self_times))


@dataclass(frozen=True)
class FailureCount:
    failure_type: str | None
    failure_code: str | None
    count: int


@dataclass(frozen=True)
class RetryStats:
    retry_steps: int
    total_steps: int
    retry_rate: float | None
    runs_with_retries: int
    total_runs: int
    run_retry_rate: float | None
    time_in_retries_ms: float
    share_of_step_time: float | None


@dataclass(frozen=True)
class RunTime:
    """Where the finished runs' time went, beside the step types' self time."""

    total_ms: float
    untraced_ms: float
    untraced_share: float | None


@dataclass(frozen=True)
class TimeBucket:
    start: datetime
    runs: int
    finished_runs: int
    success_runs: int
    failure_runs: int
    success_rate: float | None
    run_latency_ms: Percentiles


@dataclass(frozen=True)
class Timeline:
    bucket: str
    start: datetime | None
    end: datetime | None
    points: list[TimeBucket]


@dataclass(frozen=True)
class RunStats:
    total_runs: int
    finished_runs: int
    status_counts: dict[str, int]
    success_rate: float | None
    failure_rate: float | None
    partial_rate: float | None
    run_latency_ms: Percentiles
    failures_by_type: list[FailureCount]
    failures_by_code: list[FailureCount]
    top_failing_steps: list[FailingStep]
    retries: RetryStats
    step_types: list[StepGroupStats]
    step_names: list[StepGroupStats]
    step_names_truncated: bool
    step_sample_runs: int
    steps_sampled: bool
    run_time: RunTime
    timeline: Timeline
    # False when latency percentiles come from the rollups' histograms (within 1 %); counts are exact.
    latency_exact: bool = True
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
