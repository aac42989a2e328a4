"""smolagents' ``ToolCallingAgent`` over ``OpenAIServerModel`` (pointed at the fake model; its own
rate-limit retry off, no client retries), traced by ``openinference-instrumentation-smolagents``.
A tool's exception goes back to the model as the step's error; the answer is a ``final_answer`` call."""

from __future__ import annotations

from tests.conformance.record.context import Context
from tests.conformance.record.scenarios import LookupOrder, prompt, system_prompt


def record(ctx: Context) -> None:
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    from smolagents import OpenAIServerModel, ToolCallingAgent, tool

    provider = ctx.tracer_provider("smolagents-agent")
    SmolagentsInstrumentor().instrument(tracer_provider=provider)
    body = LookupOrder(ctx.scenario)

    @tool
    def lookup_order(order_id: str) -> str:
        """Look up the shipping state of an order.

        Args:
            order_id: the order's reference.
        """
        return body(order_id)

    model = OpenAIServerModel(model_id="gpt-4o-mini", api_base=ctx.model_url, api_key="sk-fake-offline",
                              client_kwargs={"max_retries": 0}, retry=False)
    agent = ToolCallingAgent(tools=[lookup_order], model=model, name="support_bot", max_steps=5,
                             instructions=system_prompt())
    agent.run(prompt())
