"""The OpenAI Agents SDK traced by ``openinference-instrumentation-openai-agents`` (exclusive: nothing
goes to OpenAI's own trace export)."""

from __future__ import annotations

from tests.conformance.record.context import Context
from tests.conformance.record.frameworks.agents_sdk import run_agent


def record(ctx: Context) -> None:
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    provider = ctx.tracer_provider("agents-oi-agent")
    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider, exclusive_processor=True)
    run_agent(ctx)
