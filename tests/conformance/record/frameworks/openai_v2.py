"""The official ``opentelemetry-instrumentation-openai-v2`` around a hand-written tool loop."""

from __future__ import annotations

from tests.conformance.record.context import Context
from tests.conformance.record.frameworks.handloop import run_agent


def record(ctx: Context) -> None:
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    provider = ctx.tracer_provider("openai-v2-agent")
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=ctx.model_url, api_key="sk-fake-offline", max_retries=0)
    run_agent(client, provider.get_tracer("conformance"), ctx.scenario)
