"""The Ingest API's own Prometheus series (the common ones are in ``server/metrics.py``).

- ``agenttracer_ingest_events_total{type, outcome}``: events by type (run_start, step, failure,
  run_end, ``unknown`` for an event whose type could not be read) and outcome (accepted, duplicate,
  rejected);
- ``agenttracer_ingest_metadata_removed_total{reason}``: metadata entries and fields the privacy
  policy removed, by reason code (never by key or value);
- ``agenttracer_ingest_batch_events`` and ``agenttracer_ingest_commit_seconds``: histograms of batch
  size and of the time to store a batch;
- ``agenttracer_otlp_spans_total{outcome}`` and ``agenttracer_otlp_dropped_total``: spans of ``/v1/traces``
  and the attribute keys, events and links it dropped (counts only);
- ``agenttracer_ingest_db_retries_total``, ``agenttracer_ingest_rate_limited_total``,
  ``agenttracer_ingest_busy_total``;
- ``agenttracer_rollup_lag_seconds``, ``agenttracer_retention_rows_deleted_total{table}`` and
  ``agenttracer_runs_abandoned_total``, read from this process's background workers when scraped;
- the agent-level series of ``server/agent_series.py``.

The store returns numbers (``WriteReport``, the workers' attributes); only this module counts them.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agenttracer import privacy
from agenttracer.model import DEFAULT_PROJECT, EventType
from agenttracer.server.agent_series import DEFAULT_IDLE_S, STEP_BOUNDS_MS, UNKNOWN, AgentSeries, Key
from agenttracer.server.metrics import HttpMetrics
from agenttracer.store.records import Closed, WriteReport, Written
from agenttracer.store.run_state import FAILURE, RUN_END, STEP, Incoming

COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 750, 1000)
# Reason codes a removal may carry: the policy's own plus the server's unknown_field.
REMOVAL_REASONS = frozenset(privacy.REASONS) | {"unknown_field"}
EVENT_TYPES = frozenset(t.value for t in EventType)
_RUN_AND_TYPE = itemgetter("run_id", "step_type")
_LATENCY = itemgetter("latency_ms")
_NO_IDENTITY: tuple[None, None, None] = (None, None, None)


class IngestMetrics(HttpMetrics):
    """The Ingest API's series; ``record_batch`` counts one stored batch."""

    def __init__(self, max_agent_series: int, agent_series_idle_s: float = DEFAULT_IDLE_S) -> None:
        super().__init__()
        registry = self.registry
        self.events = Counter(
            "agenttracer_ingest_events", "Events received, by event type and outcome (accepted, duplicate, rejected).",
            ("type", "outcome"), registry=registry,
        )
        self.removed = Counter(
            "agenttracer_ingest_metadata_removed",
            "Metadata entries and fields the privacy policy removed before storage, by reason code.",
            ("reason",), registry=registry,
        )
        self.otlp_spans = Counter(
            "agenttracer_otlp_spans", "Spans received on /v1/traces, by outcome (accepted, duplicate, rejected).",
            ("outcome",), registry=registry,
        )
        self.otlp_dropped = Counter(
            "agenttracer_otlp_dropped",
            "Span attribute keys, events and links /v1/traces dropped (not on the allow-list, or refused).",
            registry=registry,
        )
        self.batch_events = Histogram(
            "agenttracer_ingest_batch_events", "Events per ingest batch.", buckets=BATCH_BUCKETS, registry=registry,
        )
        self.commit_seconds = Histogram(
            "agenttracer_ingest_commit_seconds",
            "Seconds to store a batch: from the start of its write to its commit (lock waits and retries included).",
            buckets=COMMIT_BUCKETS, registry=registry,
        )
        self.retries = Counter(
            "agenttracer_ingest_db_retries",
            "Batch transactions redone (deadlock, serialization failure, step collision).", registry=registry,
        )
        self.rate_limited = Counter(
            "agenttracer_ingest_rate_limited", "Ingest requests refused with 429 by the per-key rate limit.",
            registry=registry,
        )
        self.busy = Counter(
            "agenttracer_ingest_busy", "Ingest requests refused with 503 because every batch slot stayed taken.",
            registry=registry,
        )
        self.agents = AgentSeries(max_agent_series, agent_series_idle_s)
        registry.register(self.agents)
        self.workers = _Workers()
        registry.register(self.workers)

    def watch_workers(self, rollup: Any = None, retention: Any = None, sweep: Any = None) -> None:
        """Report the background workers of this process (``store.rollup.live.RollupWorker``,
        ``store.retention.RetentionWorker``, ``store.write.abandon.AbandonWorker``) from now on; None
        leaves a worker unreported. The runs the sweep closes count in the agent-level series."""
        self.workers.rollup = rollup
        self.workers.retention = retention
        self.workers.sweep = sweep
        if sweep is not None:
            sweep.on_closed = self.record_abandoned

    def record_abandoned(self, closed: Sequence[Closed]) -> None:
        """Count the runs a sweep pass closed as settled ``failure`` runs and their failures, like a run_end."""
        runs: dict[Key, int] = {}
        failures: dict[Key, int] = {}
        for run in closed:
            agent, version = run.agent_id or UNKNOWN, run.agent_version or UNKNOWN
            key: Key = (run.project, agent, version, run.environment or UNKNOWN, "failure")
            runs[key] = runs.get(key, 0) + 1
            key = (run.project, agent, version, run.failure_type, run.failure_code)
            failures[key] = failures.get(key, 0) + 1
        if runs:
            self.agents.record(runs, failures, {})

    def record_otlp(self, written: Written, rejected: int, dropped: int, projects: Mapping[str, str]) -> None:
        """Count one stored OTLP export request: its spans, what was dropped, and the agent-level
        series of the runs it settled or failed and the steps it stored (``projects``: run_id -> project)."""
        counts = (("accepted", written.accepted), ("duplicate", written.duplicates), ("rejected", rejected))
        for outcome, count in counts:
            if count:
                self.otlp_spans.labels(outcome).inc(count)
        if dropped:
            self.otlp_dropped.inc(dropped)
        identities = written.identities
        runs: dict[Key, int] = {}
        failures: dict[Key, int] = {}
        key: Key
        for run_id, status in written.settled:
            agent, version, environment = identities.get(run_id) or _NO_IDENTITY
            key = (projects.get(run_id, UNKNOWN), agent or UNKNOWN, version or UNKNOWN, environment or UNKNOWN, status)
            runs[key] = runs.get(key, 0) + 1
        for run_id, failure_type, code in written.failed:
            agent, version, _ = identities.get(run_id) or _NO_IDENTITY
            key = (projects.get(run_id, UNKNOWN), agent or UNKNOWN, version or UNKNOWN, failure_type, code or UNKNOWN)
            failures[key] = failures.get(key, 0) + 1
        steps = _step_histograms(written.steps, identities, projects.get) if written.steps else {}
        if runs or failures or steps:
            self.agents.record(runs, failures, steps)

    def record_batch(
        self,
        results: Sequence[dict[str, Any]],
        outcomes: Mapping[tuple[str | None, str], int],
        removed: int,
        incoming: Sequence[Incoming],
        report: WriteReport,
        commit_seconds: float,
        project: str = DEFAULT_PROJECT,
    ) -> None:
        """Count a stored batch of ``project``: its per-event ``results`` (after the writer's outcomes) with
        their tally by (type, status) and number of removals, the records that reached the writer, what the
        writer reported, and how long the write took. This runs for every batch on the ingest path:
        its cost per event is what the <= 5 % bar is about, hence C-level helpers where it loops."""
        for (kind, outcome), n in outcomes.items():
            self.events.labels(kind if kind in EVENT_TYPES else "unknown", outcome).inc(n)
        if removed:
            reasons = Tally(rem["reason"] for result in results if result["removed"] for rem in result["removed"])
            for reason, n in reasons.items():
                self.removed.labels(reason if reason in REMOVAL_REASONS else "other").inc(n)
        self.batch_events.observe(len(results))
        if incoming:
            self.commit_seconds.observe(commit_seconds)
        if report.retries:
            self.retries.inc(report.retries)
        accepted = sum(n for (_, outcome), n in outcomes.items() if outcome == "accepted")
        # Most batches are accepted whole: then no event's status needs looking up.
        statuses = None if accepted == len(results) else [result["status"] for result in results]
        self._record_agents(statuses, incoming, report, project)

    def _record_agents(
        self, statuses: list[str] | None, incoming: Sequence[Incoming], report: WriteReport, project: str
    ) -> None:
        identities = report.identities
        runs: dict[Key, int] = {}
        failures: dict[Key, int] = {}
        if statuses is not None:
            incoming = [item for item in incoming if statuses[item.index] == "accepted"]
        step_values = [item.values for item in incoming if item.kind == STEP]
        key: Key
        for item in incoming:
            if item.kind == STEP:
                continue
            values = item.values
            agent, version, environment = identities.get(item.run_id) or _NO_IDENTITY
            if item.kind == RUN_END:
                key = (project, agent or UNKNOWN, version or UNKNOWN, environment or UNKNOWN, values["status"])
                runs[key] = runs.get(key, 0) + 1
            elif item.kind == FAILURE:
                key = (project, agent or UNKNOWN, version or UNKNOWN, values["failure_type"],
                       values["failure_code"] or UNKNOWN)
                failures[key] = failures.get(key, 0) + 1
        steps = _step_histograms(step_values, identities, lambda _run_id: project) if step_values else {}
        if runs or failures or steps:
            self.agents.record(runs, failures, steps)


def _step_histograms(
    step_values: list[dict[str, Any]],
    identities: dict[str, tuple[str | None, str | None, str | None]],
    project_of: Callable[[str], str | None],
) -> dict[Key, tuple[list[int], float]]:
    """Bucket counts and latency sums per (project, agent, version, step type) of a batch's accepted steps.

    Steps are most of the events, so the per-step work is left to C (``map``, ``bisect``,
    ``Counter`` over ``zip``); Python code runs once per (run, step type), not once per step.
    """
    groups = list(map(_RUN_AND_TYPE, step_values))
    latencies = list(map(_LATENCY, step_values))
    tallies = Tally(zip(groups, map(bisect_left, repeat(STEP_BOUNDS_MS), latencies), strict=True))
    sums: dict[tuple[str, str], float] = dict.fromkeys(groups, 0.0)
    for group, latency in zip(groups, latencies, strict=True):
        sums[group] += latency
    out: dict[Key, tuple[list[int], float]] = {}
    labels: dict[tuple[str, str], Key] = {}
    for group, total in sums.items():
        run_id, step_type = group
        agent, version, _ = identities.get(run_id) or _NO_IDENTITY
        key = labels[group] = (project_of(run_id) or UNKNOWN, agent or UNKNOWN, version or UNKNOWN, step_type)
        held = out.get(key)
        out[key] = (held[0] if held else AgentSeries.step_buckets(), (held[1] if held else 0.0) + total / 1000.0)
    for (group, bucket), n in tallies.items():
        out[labels[group]][0][bucket] += n
    return out


class _Workers(Collector):
    """The ingest process's background workers, read when scraped (nothing is counted on their side)."""

    def __init__(self) -> None:
        self.rollup: Any = None
        self.retention: Any = None
        self.sweep: Any = None

    def collect(self) -> Iterable[Metric]:
        rollup, retention, sweep = self.rollup, self.retention, self.sweep
        if sweep is not None:
            abandoned = CounterMetricFamily(
                "agenttracer_runs_abandoned",
                "Runs this process closed as failure / abandoned (no event for AGENTTRACER_RUN_TIMEOUT_S).",
            )
            abandoned.add_metric((), sweep.closed)
            yield abandoned
        if rollup is not None:
            lag = GaugeMetricFamily(
                "agenttracer_rollup_lag_seconds",
                "Seconds since the rollup refresher last finished a pass with nothing left to fold in.",
            )
            lag.add_metric((), max(0.0, time.time() - rollup.caught_up_at))
            yield lag
        if retention is not None:
            deleted = CounterMetricFamily(
                "agenttracer_retention_rows_deleted", "Rows deleted by retention in this process, by table.",
                labels=("table",),
            )
            for table, n in sorted(retention.deleted.items()):
                deleted.add_metric((table,), n)
            yield deleted
