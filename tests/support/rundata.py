"""Runs with known content for read-side tests: described once, turned into wire events or table rows.

``RunSpec``/``StepSpec`` describe a run; ``events()`` renders it in the ingest wire format (model.py's
docstring), and ``insert_runs()`` writes the equivalent rows straight into a migrated database for
tests of the read path alone. ``sample_runs()`` is a small fleet covering every filter dimension.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import sqlalchemy as sa

from agenttracer.store.sql.schema.tables import failures, runs, steps

T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc)


@dataclass
class StepSpec:
    seq: int
    step_type: str
    name: str
    offset_ms: float = 0.0  # start, relative to the run's start
    latency_ms: float = 10.0
    status: str = "ok"
    attempt: int = 1
    retry_of_seq: int | None = None
    parent_seq: int | None = None
    error_class: str | None = None
    failure_code: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSpec:
    agent_id: str
    agent_version: str
    environment: str
    started_at: datetime
    status: str
    steps: list[StepSpec] = field(default_factory=list)
    failure: dict[str, Any] | None = None  # failure_type, failure_code, step_seq?, message?
    meta: dict[str, Any] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def ended_at(self) -> datetime | None:
        if self.status == "running":
            return None
        end = max((s.offset_ms + s.latency_ms for s in self.steps), default=5.0) + 1.0
        return self.started_at + timedelta(milliseconds=end)

    def step_names(self) -> set[str]:
        return {s.name for s in self.steps}


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def events(spec: RunSpec) -> list[dict[str, Any]]:
    """The run as the SDK would send it: run_start, steps, failure, run_end."""
    identity = {"agent_id": spec.agent_id, "agent_version": spec.agent_version, "environment": spec.environment}
    out: list[dict[str, Any]] = [
        {"type": "run_start", "run_id": spec.run_id, **identity, "started_at": _iso(spec.started_at),
         "metadata": spec.meta}
    ]
    for s in spec.steps:
        start = spec.started_at + timedelta(milliseconds=s.offset_ms)
        ev: dict[str, Any] = {
            "type": "step", "run_id": spec.run_id, "seq": s.seq, "step_type": s.step_type, "name": s.name,
            "started_at": _iso(start), "ended_at": _iso(start + timedelta(milliseconds=s.latency_ms)),
            "latency_ms": s.latency_ms, "status": s.status, "attempt": s.attempt, "metadata": s.meta,
        }
        for key in ("retry_of_seq", "parent_seq", "error_class", "failure_code"):
            if getattr(s, key) is not None:
                ev[key] = getattr(s, key)
        out.append(ev)
    if spec.failure is not None:
        out.append({"type": "failure", "run_id": spec.run_id, **spec.failure})
    if spec.ended_at is not None:
        out.append({"type": "run_end", "run_id": spec.run_id, **identity, "ended_at": _iso(spec.ended_at),
                    "status": spec.status})
    return out


def insert_runs(target: Any, specs: list[RunSpec], *, project: str = "default") -> None:
    """Write the runs' rows directly (bypassing the Ingest API) with the writer's denormalised counters.

    ``target``: a SQLAlchemy engine, a ClickHouse store connection, or a database URL of any store
    (``chdb://``/``clickhouse://`` go through ``rundata_clickhouse``): the one loader of every store.
    """
    if isinstance(target, str):
        if target.split(":", 1)[0] in ("chdb", "clickhouse", "clickhouses"):
            from agenttracer.store.clickhouse.connection import connect

            conn = connect(target)
            try:
                insert_runs(conn, specs, project=project)
            finally:
                conn.close()
            return
        from agenttracer.store.sql.schema.engine import make_engine

        engine = make_engine(target, poolclass=sa.pool.NullPool)
        try:
            insert_runs(engine, specs, project=project)
        finally:
            engine.dispose()
        return
    if not isinstance(target, sa.Engine):
        from tests.support.rundata_clickhouse import insert_statement, run_rows

        run_table, step_table = run_rows(specs, project=project)
        target.command(insert_statement("runs", run_table))
        if step_table:
            target.command(insert_statement("steps", step_table))
        return
    engine = target
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        for spec in specs:
            ended = spec.ended_at
            conn.execute(
                runs.insert().values(
                    run_id=spec.run_id, agent_id=spec.agent_id, agent_version=spec.agent_version,
                    environment=spec.environment, status=spec.status, started_at=spec.started_at, ended_at=ended,
                    duration_ms=(ended - spec.started_at).total_seconds() * 1000 if ended else None,
                    step_count=len(spec.steps),
                    error_step_count=sum(s.status == "error" for s in spec.steps),
                    retry_count=sum(s.retry_of_seq is not None for s in spec.steps),
                    failure_type=spec.failure["failure_type"] if spec.failure else None,
                    failure_code=spec.failure["failure_code"] if spec.failure else None,
                    meta=spec.meta, meta_removed=0, ingested_at=now, updated_at=now, project=project,
                )
            )
            for s in spec.steps:
                start = spec.started_at + timedelta(milliseconds=s.offset_ms)
                conn.execute(
                    steps.insert().values(
                        run_id=spec.run_id, seq=s.seq, step_type=s.step_type, name=s.name, status=s.status,
                        started_at=start, ended_at=start + timedelta(milliseconds=s.latency_ms),
                        latency_ms=s.latency_ms, attempt=s.attempt, retry_of_seq=s.retry_of_seq,
                        parent_seq=s.parent_seq, error_class=s.error_class, failure_code=s.failure_code,
                        meta=s.meta, meta_removed=0,
                    )
                )
            if spec.failure is not None:
                conn.execute(
                    failures.insert().values(
                        run_id=spec.run_id, failure_type=spec.failure["failure_type"],
                        failure_code=spec.failure["failure_code"], step_seq=spec.failure.get("step_seq"),
                        message=spec.failure.get("message"), recorded_at=ended or now,
                    )
                )


def _ok_steps() -> list[StepSpec]:
    return [
        StepSpec(1, "plan", "analyze_query", 0, 12),
        StepSpec(2, "tool", "billing_api", 15, 40, meta={"http_status": 200}),
        StepSpec(3, "respond", "generate_response", 60, 25),
    ]


def _retried_timeout_steps() -> list[StepSpec]:
    return [
        StepSpec(1, "plan", "analyze_query", 0, 10),
        StepSpec(2, "tool", "billing_api", 12, 30, status="error", error_class="TimeoutError",
                 failure_code="timeout"),
        StepSpec(3, "tool", "billing_api", 45, 30, status="error", attempt=2, retry_of_seq=2,
                 error_class="TimeoutError", failure_code="timeout"),
    ]


def sample_runs() -> list[RunSpec]:
    """Ten runs over two agents, three versions, two environments, every status and two failure kinds."""
    h = timedelta(hours=1)
    return [
        RunSpec("support-agent", "v1", "production", T0, "success", _ok_steps(), meta={"region": "eu"}),
        RunSpec("support-agent", "v1", "production", T0 + 1 * h, "success", _ok_steps()),
        RunSpec("support-agent", "v1", "staging", T0 + 2 * h, "failure", _retried_timeout_steps(),
                failure={"failure_type": "tool", "failure_code": "timeout", "step_seq": 3,
                         "message": "billing API timed out twice"}),
        RunSpec("support-agent", "v2", "production", T0 + 3 * h, "success", _ok_steps()),
        RunSpec("support-agent", "v2", "production", T0 + 4 * h, "partial", [
            StepSpec(1, "retrieval", "kb_search", 0, 20, status="error", error_class="LookupError",
                     failure_code="empty_result"),
            StepSpec(2, "respond", "generate_response", 25, 20),
        ]),
        RunSpec("support-agent", "v2", "staging", T0 + 5 * h, "failure", [
            StepSpec(1, "llm", "draft_answer", 0, 50, status="error", error_class="RateLimitError",
                     failure_code="rate_limited"),
        ], failure={"failure_type": "model", "failure_code": "rate_limited", "step_seq": 1}),
        RunSpec("search-agent", "v1", "production", T0 + 6 * h, "success", [
            StepSpec(1, "retrieval", "kb_search", 0, 15), StepSpec(2, "respond", "summarize", 16, 30),
        ]),
        RunSpec("search-agent", "v1", "production", T0 + 7 * h, "running", [
            StepSpec(1, "retrieval", "kb_search", 0, 15),
        ]),
        RunSpec("search-agent", "v1", "staging", T0 + 8 * h, "failure", _retried_timeout_steps(),
                failure={"failure_type": "tool", "failure_code": "timeout", "step_seq": 3}),
        RunSpec("search-agent", "v1", "production", T0 + 9 * h, "success", []),
    ]


def ingest_runs(ingest_url: str, specs: list[RunSpec]) -> dict[str, Any]:
    """Send the runs through the real Ingest API (``POST /v1/ingest``); fail unless every event is stored."""
    batch = [ev for spec in specs for ev in events(spec)]
    body: dict[str, Any] = {"accepted": 0}
    for i in range(0, len(batch), 1000):
        r = httpx.post(f"{ingest_url}/v1/ingest", json={"events": batch[i : i + 1000]}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        rejected = [res for res in body["results"] if res["status"] == "rejected"]
        assert not rejected, rejected
    return body
