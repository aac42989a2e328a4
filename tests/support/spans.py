"""Span records for the OTLP writer tests: ``span`` builds one tool span of a run under one root, timed
from ``T0`` (an hour before the module was imported, so inside any retention window)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agenttracer.store.otlp_assemble import SpanRecord

NOW = datetime.now(timezone.utc)
T0 = NOW - timedelta(hours=1)
ROOT = "0000000000000001"


def span(run_id: str, i: int, start_ms: int, *, error: bool = False) -> SpanRecord:
    """The ``i``-th tool span of ``run_id`` (span id ``i``), 1 ms long from ``T0`` + ``start_ms``."""
    return SpanRecord(
        run_id=run_id, span_id=f"{i:016x}", parent_span_id=ROOT, step_type="tool", name="search",
        started_at=T0 + timedelta(milliseconds=start_ms), ended_at=T0 + timedelta(milliseconds=start_ms + 1),
        latency_ms=1.0, error=error, error_class=None, failure_code="timeout" if error else None,
        explicit_attempt=None, agent_name=None, agent_version=None, meta={}, dropped=0,
    )
