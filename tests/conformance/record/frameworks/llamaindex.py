"""LlamaIndex's ``FunctionAgent`` over its OpenAI LLM (pointed at the fake model, no client retries),
traced by ``openinference-instrumentation-llama-index``. A tool's exception goes back to the model."""

from __future__ import annotations

import asyncio

from tests.conformance.record.context import Context
from tests.conformance.record.scenarios import LookupOrder, prompt, system_prompt


def record(ctx: Context) -> None:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI
    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

    provider = ctx.tracer_provider("llamaindex-agent")
    LlamaIndexInstrumentor().instrument(tracer_provider=provider)
    body = LookupOrder(ctx.scenario)

    def lookup_order(order_id: str) -> str:
        """Look up the shipping state of an order."""
        return body(order_id)

    llm = OpenAI(model="gpt-4o-mini", api_base=ctx.model_url, api_key="sk-fake-offline", max_retries=0)
    agent = FunctionAgent(name="support_bot", tools=[FunctionTool.from_defaults(fn=lookup_order)], llm=llm,
                          system_prompt=system_prompt(), streaming=False)

    async def run() -> object:
        return await agent.run(user_msg=prompt())

    asyncio.run(run())
