"""Pydantic AI's own OpenTelemetry instrumentation (GenAI conventions, content capture on), its OpenAI
model pointed at the fake model. A tool error is ``ModelRetry``: Pydantic AI hands it to the model."""

from __future__ import annotations

from typing import Any

from tests.conformance.record.context import Context
from tests.conformance.record.scenarios import LookupOrder, prompt, system_prompt


def make_agent(ctx: Context, instrument: Any, name: str = "support_bot") -> Any:
    import openai
    from pydantic_ai import Agent, ModelRetry
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    client = openai.AsyncOpenAI(base_url=ctx.model_url, api_key="sk-fake-offline", max_retries=0)
    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client))
    capabilities = []
    if instrument is not None:
        from pydantic_ai.capabilities.instrumentation import Instrumentation

        capabilities.append(Instrumentation(settings=instrument))
    agent = Agent(model, name=name, system_prompt=system_prompt(), capabilities=capabilities)
    body = LookupOrder(ctx.scenario)

    @agent.tool_plain
    def lookup_order(order_id: str) -> str:
        """Look up the shipping state of an order."""
        try:
            return body(order_id)
        except ConnectionError as exc:
            raise ModelRetry(str(exc)) from exc

    return agent


def record(ctx: Context) -> None:
    from pydantic_ai.models.instrumented import InstrumentationSettings

    provider = ctx.tracer_provider("pydantic-ai-agent")
    agent = make_agent(ctx, InstrumentationSettings(tracer_provider=provider, include_content=True))
    agent.run_sync(prompt())
