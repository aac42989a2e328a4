"""AgentTracer: privacy-safe observability for AI agents.

The agent-side package: importing it loads only the standard library and httpx (never FastAPI,
SQLAlchemy or pydantic — the server lives behind ``agenttracer.server`` and the ``[server]`` extra).
"""

from agenttracer._version import __version__
from agenttracer.model import FailureType, RunStatus, StepType
from agenttracer.sdk.context import current_run, current_step
from agenttracer.sdk.counts import DeliveryStats
from agenttracer.sdk.decorators import traced
from agenttracer.sdk.retry import Attempt, Retrying
from agenttracer.sdk.tracer import AgentTracer, Run, Step

__all__ = [
    "AgentTracer",
    "Attempt",
    "DeliveryStats",
    "FailureType",
    "Retrying",
    "Run",
    "RunStatus",
    "Step",
    "StepType",
    "__version__",
    "current_run",
    "current_step",
    "traced",
]
