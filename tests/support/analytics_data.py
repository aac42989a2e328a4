"""Generated agent runs whose analytics answer is known in advance (for the stats and compare tests).

``make_version(...)`` builds the runs of one agent version deterministically from a few knobs (tool
latency factor, which runs see a tool error). The tests compute the expected numbers from these
Python objects independently of the code under test, then load them through the real Ingest API
(``ingest`` / ``served_scenario``) or, for storage-level tests, straight into the tables
(``insert_rows``, keeping the denormalised run columns as the writer does).

Every run: plan (with a nested llm step) → retrieval → tool → respond. A run chosen to see a tool
error gets an error attempt and a retry; when the retry fails too the run ends in failure at the tool
(failure tool/timeout) without a respond step.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agenttracer.store.sql.schema.tables import failures, runs, steps

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
RUN_OVERHEAD_MS = 5.0


@dataclass
class StepSpec:
    seq: int
    step_type: str
    name: str
    latency_ms: float
    status: str = "ok"
    attempt: int = 1
    retry_of_seq: int | None = None
    parent_seq: int | None = None
    error_class: str | None = None
    failure_code: str | None = None
    started_at: datetime = T0
    ended_at: datetime = T0


@dataclass
class RunSpec:
    run_id: str
    agent_id: str
    agent_version: str
    environment: str
    started_at: datetime
    status: str
    steps: list[StepSpec] = field(default_factory=list)
    failure: tuple[str, str, int | None] | None = None  # (type, code, step_seq)

    @property
    def finished(self) -> bool:
        return self.status != "running"

    @property
    def duration_ms(self) -> float | None:
        if not self.finished:
            return None
        top = [s.latency_ms for s in self.steps if s.parent_seq is None]
        return sum(top) + RUN_OVERHEAD_MS

    @property
    def ended_at(self) -> datetime | None:
        d = self.duration_ms
        return None if d is None else self.started_at + timedelta(milliseconds=d)


class _Builder:
    """Appends steps to a run back to back on the run's clock."""

    def __init__(self, run: RunSpec) -> None:
        self.run = run
        self.clock = run.started_at

    def add(self, step_type: str, name: str, latency: float, *, nested: bool = False, **kw: Any) -> StepSpec:
        s = StepSpec(seq=len(self.run.steps) + 1, step_type=step_type, name=name, latency_ms=latency, **kw)
        s.started_at = self.clock
        s.ended_at = self.clock + timedelta(milliseconds=latency)
        if not nested:
            self.clock = s.ended_at
        self.run.steps.append(s)
        return s


def make_version(
    version: str,
    n_runs: int,
    *,
    tool_factor: float = 1.0,
    tool_error: Callable[[int], bool] = lambda i: i % 10 == 0,
    agent_id: str = "support-agent",
    environment: str = "production",
    start: datetime = T0,
    spacing: timedelta = timedelta(minutes=1),
    running: int = 0,
) -> list[RunSpec]:
    """``n_runs`` finished runs of one version (plus ``running`` unfinished ones), deterministic in i."""
    out: list[RunSpec] = []
    for i in range(n_runs + running):
        run = RunSpec(
            run_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{agent_id}/{version}/{environment}/{start}/{i}")),
            agent_id=agent_id,
            agent_version=version,
            environment=environment,
            started_at=start + i * spacing,
            status="success",
        )
        builder = _Builder(run)
        add = builder.add
        plan = add("plan", "analyze_query", 20.0 + i % 7)
        # Nested inside the plan step: starts with it and does not advance the run's clock.
        builder.clock = plan.started_at
        add("llm", "draft_plan", 12.0 + i % 5, nested=True, parent_seq=plan.seq)
        builder.clock = plan.ended_at
        add("retrieval", "kb_search", 50.0 + (i * 3) % 11)
        tool_latency = (100.0 + (i * 13) % 40) * tool_factor
        if i >= n_runs:
            run.status = "running"
        elif tool_error(i):
            first = add("tool", "billing_api", tool_latency, status="error",
                        error_class="TimeoutError", failure_code="timeout")
            retry_fails = (i // 10) % 2 == 0
            retry = add("tool", "billing_api", tool_latency + 10.0, attempt=2, retry_of_seq=first.seq,
                        **({"status": "error", "error_class": "TimeoutError", "failure_code": "timeout"}
                           if retry_fails else {}))
            if retry_fails:
                run.status = "failure"
                run.failure = ("tool", "timeout", retry.seq)
            else:
                add("respond", "generate_response", 30.0 + i % 5)
        else:
            add("tool", "billing_api", tool_latency)
            add("respond", "generate_response", 30.0 + i % 5)
        out.append(run)
    return out


def scenario() -> tuple[list[RunSpec], list[RunSpec], list[RunSpec]]:
    """The standard comparison: v2's tool is 2x slower and errors in 30% of runs (v1: 10%).

    Returns (v1 runs incl. 2 still running, v2 runs, ``tiny-agent`` with 5 runs of t1 and of t2).
    """
    base = make_version("v1", 100, running=2)
    candidate = make_version("v2", 100, tool_factor=2.0, tool_error=lambda i: i % 10 < 3)
    # A second agent with 5 runs per version: too few to tell anything.
    tiny = make_version("t1", 5, agent_id="tiny-agent") + make_version(
        "t2", 5, agent_id="tiny-agent", tool_factor=3.0, tool_error=lambda i: True
    )
    return base, candidate, tiny


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def as_events(batch: Iterable[RunSpec]) -> list[dict[str, Any]]:
    """The runs as wire events for ``POST /v1/ingest`` (see the model module's docstring)."""
    events: list[dict[str, Any]] = []
    for r in batch:
        ident = {"run_id": r.run_id, "agent_id": r.agent_id, "agent_version": r.agent_version,
                 "environment": r.environment}
        events.append({"type": "run_start", **ident, "started_at": _iso(r.started_at)})
        for s in r.steps:
            ev: dict[str, Any] = {
                "type": "step", "run_id": r.run_id, "seq": s.seq, "step_type": s.step_type, "name": s.name,
                "started_at": _iso(s.started_at), "ended_at": _iso(s.ended_at), "latency_ms": s.latency_ms,
                "status": s.status, "attempt": s.attempt,
            }
            for key in ("retry_of_seq", "parent_seq", "error_class", "failure_code"):
                if getattr(s, key) is not None:
                    ev[key] = getattr(s, key)
            events.append(ev)
        if r.failure:
            events.append({"type": "failure", "run_id": r.run_id, "failure_type": r.failure[0],
                           "failure_code": r.failure[1], "step_seq": r.failure[2]})
        if r.finished and r.ended_at is not None:
            events.append({"type": "run_end", **ident, "ended_at": _iso(r.ended_at), "status": r.status})
    return events


def insert_rows(engine: sa.Engine, batch: Iterable[RunSpec]) -> None:
    """Insert the runs straight into the tables, keeping the denormalised run columns exact."""
    now = datetime.now(timezone.utc)
    run_rows, step_rows, failure_rows = [], [], []
    for r in batch:
        run_rows.append({
            "run_id": r.run_id, "agent_id": r.agent_id, "agent_version": r.agent_version,
            "environment": r.environment, "status": r.status, "started_at": r.started_at,
            "ended_at": r.ended_at, "duration_ms": r.duration_ms, "step_count": len(r.steps),
            "error_step_count": sum(s.status == "error" for s in r.steps),
            "retry_count": sum(s.attempt > 1 for s in r.steps),
            "failure_type": r.failure[0] if r.failure else None,
            "failure_code": r.failure[1] if r.failure else None,
            "meta": {}, "meta_removed": 0, "ingested_at": now, "updated_at": now,
        })
        for s in r.steps:
            step_rows.append({
                "run_id": r.run_id, "seq": s.seq, "step_type": s.step_type, "name": s.name, "status": s.status,
                "started_at": s.started_at, "ended_at": s.ended_at, "latency_ms": s.latency_ms,
                "attempt": s.attempt, "retry_of_seq": s.retry_of_seq, "parent_seq": s.parent_seq,
                "error_class": s.error_class, "failure_code": s.failure_code, "meta": {}, "meta_removed": 0,
            })
        if r.failure:
            failure_rows.append({"run_id": r.run_id, "failure_type": r.failure[0], "failure_code": r.failure[1],
                                 "step_seq": r.failure[2], "message": None, "recorded_at": now})
    with engine.begin() as conn:
        if run_rows:
            conn.execute(runs.insert(), run_rows)
        if step_rows:
            conn.execute(steps.insert(), step_rows)
        if failure_rows:
            conn.execute(failures.insert(), failure_rows)


def ingest(ingest_url: str, batch: Iterable[RunSpec], *, chunk: int = 1000) -> None:
    """Send the runs through the real Ingest API (``POST /v1/ingest``), failing loudly on any rejection."""
    import httpx

    events = as_events(batch)
    with httpx.Client(base_url=ingest_url, timeout=30) as client:
        for i in range(0, len(events), chunk):
            resp = client.post("/v1/ingest", json={"events": events[i : i + chunk]})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            rejected = [r for r in body.get("results", []) if r.get("status") not in ("accepted", "duplicate")]
            assert not rejected, rejected[:3]


@contextmanager
def served_scenario(backend: str, tmp: Path, batch: list[RunSpec]) -> Iterator[str]:
    """A migrated database on ``backend`` loaded with ``batch`` through the real Ingest API over HTTP,
    and the Query API serving it on loopback. Yields the Query API's base URL.
    """
    from agenttracer.server import ingest as ingest_api
    from agenttracer.server import query as query_api
    from agenttracer.server.settings import Settings
    from agenttracer.store import open_store
    from tests.support.db import drop_chdb_database, drop_pg_schema, new_chdb_url, new_pg_schema_url
    from tests.support.servers import serve_app

    schema = chdb = None
    if backend == "sqlite":
        url = f"sqlite:///{(tmp / 'analytics.db').as_posix()}"
    elif backend == "chdb":
        url = chdb = new_chdb_url()
    else:
        url, schema = new_pg_schema_url()
    try:
        store = open_store(url)
        store.migrate()
        store.close()
        settings = Settings(database_url=url)
        with serve_app(ingest_api.create_app(settings)) as ingest_url:
            ingest(ingest_url, batch)
        with serve_app(query_api.create_app(settings)) as query_url:
            yield query_url
    finally:
        if schema:
            drop_pg_schema(schema)
        if chdb:
            drop_chdb_database(chdb)
