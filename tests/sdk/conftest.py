"""Fixtures for the SDK tests: a scriptable fault server and a tracer factory that always shuts down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agenttracer import AgentTracer
from tests.sdk.faults import FaultServer, fault_server


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with fault_server() as srv:
        yield srv


@pytest.fixture
def make_tracer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., AgentTracer]]:
    """Build tracers with test-friendly defaults (short timeouts); every one is shut down afterwards."""
    for name in ("API_URL", "API_KEY", "AGENT_ID", "AGENT_VERSION", "ENVIRONMENT", "ENABLED"):
        monkeypatch.delenv(f"AGENTTRACER_{name}", raising=False)
    made: list[AgentTracer] = []

    def make(api_url: str, **kwargs: Any) -> AgentTracer:
        kwargs.setdefault("agent_id", "test-agent")
        kwargs.setdefault("agent_version", "v1")
        kwargs.setdefault("environment", "test")
        kwargs.setdefault("timeout", 1.0)
        kwargs.setdefault("flush_interval", 0.05)
        tracer = AgentTracer(api_url=api_url, **kwargs)
        made.append(tracer)
        return tracer

    yield make
    for tracer in made:
        tracer.shutdown(0.5)
