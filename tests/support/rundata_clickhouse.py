"""``rundata.insert_runs`` for the ClickHouse store: the same runs written as table rows, bypassing ingest.

Rows are what the ClickHouse writer stores (store/clickhouse/schema): the run's failure folded into its
row, identity denormalised onto its steps, ``version`` 1. ``JSONEachRow`` text, so the one statement
works through chdb and clickhouse-connect alike.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.support.rundata import RunSpec


def _ts(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def run_rows(specs: list[RunSpec], *, project: str = "default",
             version: int = 1) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The runs' and steps' rows of ``specs`` with the writer's denormalised counters."""
    now = _ts(datetime.now(timezone.utc))
    runs, steps = [], []
    for spec in specs:
        ended = spec.ended_at
        failure = spec.failure or {}
        runs.append({
            "project": project, "run_id": spec.run_id, "agent_id": spec.agent_id,
            "agent_version": spec.agent_version, "environment": spec.environment, "status": spec.status,
            "started_at": _ts(spec.started_at), "ended_at": _ts(ended),
            "duration_ms": (ended - spec.started_at).total_seconds() * 1000 if ended else None,
            "step_count": len(spec.steps), "error_step_count": sum(s.status == "error" for s in spec.steps),
            "retry_count": sum(s.retry_of_seq is not None for s in spec.steps),
            "failure_type": failure.get("failure_type"), "failure_code": failure.get("failure_code"),
            "failure_step_seq": failure.get("step_seq"), "failure_message": failure.get("message"),
            "failure_recorded_at": (_ts(ended) or now) if spec.failure else None,
            "meta": json.dumps(spec.meta), "meta_removed": 0, "ingested_at": now, "updated_at": now,
            "root_span_id": None, "root_error": None, "source": "sdk", "abandoned": False,
            "version": version, "is_deleted": 0,
        })
        for s in spec.steps:
            start = spec.started_at + timedelta(milliseconds=s.offset_ms)
            steps.append({
                "project": project, "agent_id": spec.agent_id, "agent_version": spec.agent_version,
                "environment": spec.environment, "run_id": spec.run_id, "seq": s.seq, "step_type": s.step_type,
                "name": s.name, "status": s.status, "started_at": _ts(start),
                "ended_at": _ts(start + timedelta(milliseconds=s.latency_ms)), "latency_ms": s.latency_ms,
                "attempt": s.attempt, "retry_of_seq": s.retry_of_seq, "parent_seq": s.parent_seq,
                "error_class": s.error_class, "failure_code": s.failure_code, "meta": json.dumps(s.meta),
                "meta_removed": 0, "span_id": None, "parent_span_id": None, "version": version, "is_deleted": 0,
            })
    return runs, steps


def insert_statement(table: str, rows: list[dict[str, Any]]) -> str:
    """One INSERT of ``rows`` into ``table``."""
    return f"INSERT INTO {table} FORMAT JSONEachRow\n" + "\n".join(json.dumps(r) for r in rows)
