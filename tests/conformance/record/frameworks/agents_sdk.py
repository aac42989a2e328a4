"""The OpenAI Agents SDK agent both Agents recordings run: one agent with ``lookup_order``, its model an
``OpenAIChatCompletionsModel`` on a client pointed at the fake model (no client retries)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conformance.record.context import Context
from tests.conformance.record.scenarios import LookupOrder, prompt, system_prompt


def run_agent(ctx: Context) -> Any:
    import openai
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool

    client = openai.AsyncOpenAI(base_url=ctx.model_url, api_key="sk-fake-offline", max_retries=0)
    body = LookupOrder(ctx.scenario)

    @function_tool
    def lookup_order(order_id: str) -> str:
        """Look up the shipping state of an order."""
        return body(order_id)

    agent = Agent(name="support_bot", instructions=system_prompt(), tools=[lookup_order],
                  model=OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client))
    return asyncio.run(Runner.run(agent, prompt()))
