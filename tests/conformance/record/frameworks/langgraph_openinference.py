"""LangGraph traced by ``openinference-instrumentation-langchain``."""

from __future__ import annotations

from tests.conformance.record.context import Context
from tests.conformance.record.frameworks.langgraph_agent import run_agent


def record(ctx: Context) -> None:
    from openinference.instrumentation.langchain import LangChainInstrumentor

    provider = ctx.tracer_provider("langgraph-oi-agent")
    LangChainInstrumentor().instrument(tracer_provider=provider)
    run_agent(ctx)
