"""Wire models of GET /v1/stats and GET /v1/compare."""

from __future__ import annotations

from datetime import datetime

from pydantic import (
    BaseModel,
    Field,
)

from agenttracer.model import (
    FailureType,
    StepType,
)

#
# Responses of GET /v1/stats and GET /v1/compare. Built from the dataclasses of store/results.py and
# store/compare_result.py (same field names). Latencies are milliseconds; rates are fractions in
# [0, 1] and null when there is nothing to divide by; percentiles use PostgreSQL's percentile_cont
# definition (linear interpolation between the two nearest ranks) on every database.


class LatencyPercentiles(BaseModel):
    """Continuous percentiles (linear interpolation, as PostgreSQL's percentile_cont); null without data."""

    p50: float | None = Field(description="Median, in milliseconds.")
    p95: float | None = Field(description="95th percentile, in milliseconds.")
    p99: float | None = Field(description="99th percentile, in milliseconds.")


class StatusCounts(BaseModel):
    """Runs per status; ``running`` runs have no outcome yet."""

    running: int
    success: int
    failure: int
    partial: int


class FailureCountOut(BaseModel):
    """Runs that failed with this failure type (in failures_by_type) or code (in failures_by_code)."""

    failure_type: FailureType | None = Field(description="Set in failures_by_type, null in failures_by_code.")
    failure_code: str | None = Field(description="Set in failures_by_code, null in failures_by_type.")
    count: int = Field(description="Runs whose recorded failure has this type or code.")


class FailingStepOut(BaseModel):
    """A step (by type and name) that ends in error most often."""

    step_type: StepType
    name: str
    error_count: int = Field(description="Steps of this name that ended with status 'error' (retried or not).")
    count: int = Field(description="All steps of this name, retries included.")
    error_rate: float = Field(description="error_count / count.")


class StepGroupOut(BaseModel):
    """Counts, errors and latency attribution of one step type, or one (type, name) pair."""

    step_type: StepType
    name: str | None = Field(description="The step name; null in the per-type breakdown.")
    count: int = Field(description="Steps in the group, retries and nested steps included.")
    error_count: int = Field(description="Steps that ended with status 'error'.")
    error_rate: float = Field(description="error_count / count.")
    retry_count: int = Field(description="Steps in the group that are retries (attempt > 1).")
    latency_ms: LatencyPercentiles = Field(description="Step latency percentiles.")
    total_latency_ms: float = Field(description="Summed latency of the group's steps (a nested step's time is "
                                    "inside its parent's too).")
    self_time_ms: float = Field(
        description="Summed self time of the group's steps in finished runs: each moment of a run goes to the "
        "innermost steps running then, split evenly among parallel ones, so no time is counted twice."
    )
    share_of_run_time: float | None = Field(
        description="Latency attribution: self_time_ms / summed duration of the finished runs. The step types' "
        "shares plus run_time.untraced_share add up to 1."
    )


class RunTimeOut(BaseModel):
    """The finished runs' summed duration and the part of it no step accounts for."""

    total_ms: float = Field(description="Summed duration of the finished runs whose steps were read.")
    untraced_ms: float = Field(description="Time in which no step ran (the agent's own code between steps).")
    untraced_share: float | None = Field(
        description="untraced_ms / total_ms: with the step types' shares of run time it adds up to 1."
    )


class RetryStatsOut(BaseModel):
    """How much retrying happens and what it costs. A retry is a new step with attempt > 1."""

    retry_steps: int = Field(description="Steps that are retries of an earlier attempt.")
    total_steps: int = Field(description="All steps of the runs in scope.")
    retry_rate: float | None = Field(description="retry_steps / total_steps.")
    runs_with_retries: int = Field(description="Runs with at least one retry step.")
    total_runs: int
    run_retry_rate: float | None = Field(description="runs_with_retries / total_runs.")
    time_in_retries_ms: float = Field(description="Summed latency of the retry steps.")
    share_of_step_time: float | None = Field(description="time_in_retries_ms / summed latency of all steps.")


class TimeBucketOut(BaseModel):
    """Run volume and outcome of the runs that started within one bucket."""

    start: datetime = Field(description="Bucket start (UTC), inclusive; the bucket lasts one hour or one day.")
    runs: int = Field(description="Runs started in the bucket, running ones included.")
    finished_runs: int
    success_runs: int
    failure_runs: int
    success_rate: float | None = Field(description="success_runs / finished_runs; null for an empty bucket.")
    run_latency_ms: LatencyPercentiles = Field(description="Duration percentiles of the bucket's finished runs.")


class TimelineOut(BaseModel):
    """Runs over time. Buckets are hourly when the range spans two days or less, daily otherwise."""

    bucket: str = Field(description="'hour' or 'day'.")
    start: datetime | None = Field(description="Range start: 'since', or the first run's start.")
    end: datetime | None = Field(description="Range end: 'until', or now.")
    points: list[TimeBucketOut] = Field(
        description="Oldest first; empty buckets in the range are included (up to 1000 buckets)."
    )


class StatsResponse(BaseModel):
    """Aggregates over the runs matching the filters (the same filters as /v1/runs).

    Rates and run latency are over finished runs (status success, failure or partial). Counts, rates,
    sums and shares are always exact. Latency percentiles (run_latency_ms, each step group's
    latency_ms, each timeline point's run_latency_ms) are exact when latency_exact is true; otherwise
    they come from the hourly rollups' latency histograms and are within 1 % of the exact value.
    """

    total_runs: int = Field(description="Runs matching the filters, running ones included.")
    finished_runs: int = Field(description="Runs that have ended (status other than running).")
    status_counts: StatusCounts
    success_rate: float | None = Field(description="success / finished_runs.")
    failure_rate: float | None = Field(description="failure / finished_runs.")
    partial_rate: float | None = Field(description="partial / finished_runs.")
    run_latency_ms: LatencyPercentiles = Field(description="Duration percentiles of finished runs.")
    failures_by_type: list[FailureCountOut] = Field(description="Failed runs per failure type, most first.")
    failures_by_code: list[FailureCountOut] = Field(description="Failed runs per failure code, most first.")
    top_failing_steps: list[FailingStepOut] = Field(description="Up to 10 step names with the most error steps.")
    retries: RetryStatsOut
    step_types: list[StepGroupOut] = Field(description="Per step type, most total latency first.")
    step_names: list[StepGroupOut] = Field(description="Per (step type, name), most total latency first (top 100).")
    step_names_truncated: bool = Field(description="True when more than 100 step names exist.")
    run_time: RunTimeOut = Field(description="Latency attribution's denominator and its untraced remainder.")
    step_sample_runs: int = Field(
        description="Runs whose steps the per-step numbers (step_types, step_names, top_failing_steps, "
        "retries.time_in_retries_ms) were computed from: every matching run when read from the rollups."
    )
    steps_sampled: bool = Field(
        description="True when more runs matched than are read for per-step numbers: those then cover the "
        "newest step_sample_runs matching runs (all other numbers always cover every matching run). Only "
        "the exact path (latency_exact true) samples."
    )
    timeline: TimelineOut
    latency_exact: bool = Field(
        description="True when every latency percentile here is exact. False when they were read from the "
        "rollups' histograms: each is then within 1 % of the exact value (counts are exact either way). "
        "Stats are exact for filters on status, failure or step name, windows with no rolled-up hour, and "
        "at most 2,000 matching runs."
    )
    generated_at: datetime


class SignificanceOut(BaseModel):
    """A two-sided test of base against candidate.

    verdict 'insufficient_data' means the sample is too small to tell: fewer than min_sample
    observations in a group, or (for rates) fewer than min_expected expected events or non-events.
    """

    test: str = Field(description="'two_proportion_z' (rates) or 'mann_whitney_u' (latencies, steps per run).")
    verdict: str = Field(description="'significant' (p < alpha), 'not_significant' or 'insufficient_data'.")
    p_value: float | None = Field(description="Two-sided p-value; null when the sample is too small.")
    statistic: float | None = Field(
        description="z score, positive when the candidate is higher (Mann–Whitney: tie- and continuity-corrected)."
    )
    alpha: float


class DeltaOut(BaseModel):
    """One metric for both versions; delta = candidate − base, relative = delta / base."""

    base: float | None
    candidate: float | None
    delta: float | None
    relative: float | None = Field(description="delta / base; null when base is 0 or missing.")
    test: SignificanceOut | None


class PercentileDeltaOut(BaseModel):
    """Latency percentiles of both versions, their differences, and a Mann–Whitney U test."""

    base: LatencyPercentiles
    candidate: LatencyPercentiles
    delta: LatencyPercentiles = Field(description="candidate − base, per percentile.")
    test: SignificanceOut


class VersionSideOut(BaseModel):
    """One version's finished runs in the comparison window."""

    version: str
    runs: int = Field(description="Finished runs compared (the sample every rate and test uses).")
    finished_runs_in_window: int = Field(description="Finished runs of this version in the window.")
    sampled: bool = Field(
        description="True when more runs finished in the window than are compared: the comparison then reads "
        "the newest 2,000 finished runs of each version."
    )
    running_runs: int = Field(description="Runs still running, left out of the comparison.")
    status_counts: StatusCounts = Field(
        description="The compared runs per status; 'running' repeats running_runs (never compared)."
    )
    success_rate: float | None
    failure_rate: float | None
    run_latency_ms: LatencyPercentiles
    steps: int = Field(description="All steps of the finished runs, retries and nested steps included.")
    steps_per_run: float | None = Field(description="steps / runs.")
    retry_steps: int
    retry_rate: float | None = Field(description="retry_steps / steps.")
    runs_with_retries: int
    run_retry_rate: float | None = Field(description="runs_with_retries / runs.")


class FailureMixRowOut(BaseModel):
    """Share of finished runs failing with this (type, code), per version."""

    failure_type: FailureType
    failure_code: str
    base_count: int
    candidate_count: int
    rate: DeltaOut = Field(description="Failed runs with this type and code / finished runs.")


class StepTypeComparisonOut(BaseModel):
    """One step type in both versions: latency and error rate."""

    step_type: StepType
    base_count: int
    candidate_count: int
    latency_ms: PercentileDeltaOut
    error_rate: DeltaOut = Field(description="Error steps / steps of this type (retries included).")


class ShapeRowOut(BaseModel):
    """A run shape and how often each version's runs have it."""

    shape: list[str] = Field(
        description="Step types of the run's top-level first attempts in seq order (retries and nested steps "
        "left out); empty for runs without such steps; cut after 30 types with a final '…' entry."
    )
    base_count: int
    candidate_count: int
    share: DeltaOut = Field(description="Runs with this shape / runs compared.")


class CompareResponse(BaseModel):
    """Two versions of one agent side by side, from the execution shape alone (never content)."""

    agent_id: str
    environment: str | None
    since: datetime | None
    until: datetime | None
    alpha: float = Field(description="Significance level of every test.")
    min_sample: int = Field(description="Observations each group needs before a test says anything.")
    min_expected: float = Field(description="Expected events and non-events each group needs for a rate test.")
    base: VersionSideOut
    candidate: VersionSideOut
    success_rate: DeltaOut
    failure_rate: DeltaOut
    run_latency_ms: PercentileDeltaOut
    steps_per_run: DeltaOut = Field(description="Mean steps per run; tested with Mann–Whitney U on step counts.")
    retry_rate: DeltaOut = Field(description="Retry steps / steps.")
    run_retry_rate: DeltaOut = Field(description="Runs with a retry / runs.")
    failure_mix: list[FailureMixRowOut]
    step_types: list[StepTypeComparisonOut]
    shapes: list[ShapeRowOut] = Field(description="The 10 most common shapes of each version, most common first.")
    significant: list[str] = Field(description="Names of the metrics whose difference is significant.")
