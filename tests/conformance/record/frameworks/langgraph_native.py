"""LangGraph through our own callback handler (``agenttracer.integrations.langchain``): the recording is
the /v1/ingest batches the SDK sent."""

from __future__ import annotations

from tests.conformance.record.context import ENVIRONMENT, Context
from tests.conformance.record.frameworks.langgraph_agent import run_agent


def record(ctx: Context) -> None:
    from agenttracer import AgentTracer
    from agenttracer.integrations.langchain import AgentTracerCallbackHandler

    tracer = AgentTracer(agent_id="support_bot", agent_version=ctx.version, environment=ENVIRONMENT,
                         api_url=ctx.receiver_url)
    ctx.closers.append(lambda: tracer.shutdown(10.0))
    run_agent(ctx, {"callbacks": [AgentTracerCallbackHandler(tracer)]})
