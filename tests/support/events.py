"""Builders for wire events (the shape documented in ``agenttracer.model``), for tests that send them.

Each builder returns a plain dict ready for ``{"events": [...]}``; keyword arguments override fields
(pass ``field=None`` to drop a field entirely).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

T0 = datetime(2026, 11, 25, 9, 0, 0, tzinfo=timezone.utc)


def stamp(moment: datetime) -> str:
    """``moment`` (aware) as the ISO 8601 UTC timestamp events carry."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def ts(seconds: float) -> str:
    """An ISO 8601 UTC timestamp ``seconds`` after T0."""
    return stamp(T0 + timedelta(seconds=seconds))


def new_run_id() -> str:
    return str(uuid.uuid4())


def _build(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    event = {**base, **overrides}
    return {k: v for k, v in event.items() if v is not None}


def run_start(run_id: str, **kw: Any) -> dict[str, Any]:
    base = {
        "type": "run_start",
        "run_id": run_id,
        "agent_id": "support-agent",
        "agent_version": "v1.0.0",
        "environment": "production",
        "started_at": ts(0),
    }
    return _build(base, kw)


def step(run_id: str, seq: int, **kw: Any) -> dict[str, Any]:
    base = {
        "type": "step",
        "run_id": run_id,
        "seq": seq,
        "step_type": "tool",
        "name": f"step_{seq}",
        "started_at": ts(seq),
        "ended_at": ts(seq + 0.5),
        "latency_ms": 500.0,
        "status": "ok",
    }
    return _build(base, kw)


def failure(run_id: str, **kw: Any) -> dict[str, Any]:
    base = {
        "type": "failure",
        "run_id": run_id,
        "failure_type": "tool",
        "failure_code": "timeout",
        "recorded_at": ts(50),
    }
    return _build(base, kw)


def run_end(run_id: str, **kw: Any) -> dict[str, Any]:
    base = {
        "type": "run_end",
        "run_id": run_id,
        "agent_id": "support-agent",
        "agent_version": "v1.0.0",
        "environment": "production",
        "ended_at": ts(60),
        "status": "success",
    }
    return _build(base, kw)


def full_run(run_id: str | None = None, steps: int = 3) -> list[dict[str, Any]]:
    """A complete successful run: start, ``steps`` ok steps, end."""
    rid = run_id or new_run_id()
    return [run_start(rid), *(step(rid, i) for i in range(1, steps + 1)), run_end(rid)]
