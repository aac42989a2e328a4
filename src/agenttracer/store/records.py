"""What the store's writes and jobs report back, in every store: per-batch reports and job results.

The per-event outcomes of an SDK batch are :class:`~agenttracer.store.run_state.Outcome`; the spans of
an OTLP request are counted in :class:`Written`. Only values that passed the privacy policy and were
stored ever appear here (they feed the servers' metrics), never a rejected event's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The rule named (field ``run_id``) when an event's run was created in another project.
FOREIGN_RUN_RULE = "is a run of another project: a run id is written from one project only"

# A run's (agent_id, agent_version, environment) as stored; None parts while its start has not arrived.
Identity = tuple[str | None, str | None, str | None]


@dataclass(slots=True)
class WriteReport:
    """What a caller may want to count about a write besides the outcomes (the server's metrics).

    ``retries``: transactions redone (deadlock, serialization failure, a step collision); ``identities``:
    every run the batch touched -> its (agent_id, agent_version, environment) as stored after the
    commit (None parts while a run's start has not arrived). Only values that passed the policy and
    were stored: never a rejected event's.
    """

    retries: int = 0
    identities: dict[str, Identity] = field(default_factory=dict)


@dataclass(slots=True)
class Written:
    """How many of the request's spans were stored now, were already stored, or were refused (their
    trace id is the run_id of another project's run, or their run would pass MAX_SEQ steps; or, counted
    in ``other_source`` too, their trace id is the run_id of a run the SDK sent)."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    other_source: int = 0
    # For the server's agent-level metrics (only stored values): each touched run's identity after the
    # commit, the runs that settled now (run_id, status), the runs that failed now (run_id, failure
    # type, code), and the steps stored now (run_id, step_type, latency_ms).
    identities: dict[str, Identity] = field(default_factory=dict)
    settled: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Closed:
    """One run the sweep closed, with what the server's metrics label it by."""

    run_id: str
    project: str
    agent_id: str | None
    agent_version: str | None
    environment: str | None
    failure_type: str
    failure_code: str


# One abandonment-sweep pass on every store: runs closed per batch, and batches per pass.
SWEEP_BATCH_SIZE = 500
SWEEP_MAX_BATCHES = 20


def sweep_interval(timeout_s: float) -> float:
    """Seconds between the ingest process's sweeps: a tenth of the run timeout, within [1, 60], so a run
    is closed at most ~10 % (or a minute) after its timeout — on every store."""
    return min(60.0, max(1.0, timeout_s / 10.0))


@dataclass(slots=True)
class SweepResult:
    cutoff: datetime
    closed: list[Closed] = field(default_factory=list)
    batches: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class PruneResult:
    cutoff: datetime
    runs: int
    steps: int
    failures: int
    batches: int
    dry_run: bool


@dataclass(frozen=True)
class Deleted:
    runs: int
    steps: int
    failures: int
    revoked_keys: int


@dataclass(frozen=True)
class RefreshResult:
    hours: int  # hours recomputed (dirty ones and newly closed ones)
    days: int  # daily rows rewritten
    rolled_until: datetime | None
    dirty_left: int  # hours still marked dirty afterwards (written to while the refresher ran)
    seconds: float
    skipped: bool = False  # another refresher held the lock


@dataclass(frozen=True)
class LiveResult:
    buckets: int  # 10-second buckets recomputed (new and dirty ones)
    minutes: int  # minute rows rewritten
    live_until: datetime | None
    seconds: float
    skipped: bool = False  # another refresher held the lock
