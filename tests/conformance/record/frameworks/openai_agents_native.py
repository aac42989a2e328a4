"""The OpenAI Agents SDK through our own processor (``agenttracer.integrations.openai_agents``): the
recording is the /v1/ingest batches the SDK sent. Only our processor is installed."""

from __future__ import annotations

from tests.conformance.record.context import ENVIRONMENT, Context
from tests.conformance.record.frameworks.agents_sdk import run_agent


def record(ctx: Context) -> None:
    from agents import set_trace_processors

    from agenttracer import AgentTracer
    from agenttracer.integrations.openai_agents import AgentTracerProcessor

    tracer = AgentTracer(agent_id="support_bot", agent_version=ctx.version, environment=ENVIRONMENT,
                         api_url=ctx.receiver_url)
    set_trace_processors([AgentTracerProcessor(tracer)])
    ctx.closers.append(lambda: tracer.shutdown(10.0))
    run_agent(ctx)
