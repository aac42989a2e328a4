"""CrewAI: one agent with ``lookup_order`` in a one-task crew, its ``LLM`` on the OpenAI provider pointed
at the fake model. Traced by ``openinference-instrumentation-crewai`` (crew, task, agent and tool spans)
together with ``openinference-instrumentation-openai`` — CrewAI's own spans carry no model calls, the
OpenAI instrumentor adds them. CrewAI's anonymous telemetry is off (the recorder is offline).

CrewAI pins ``openai<3``: record it from a virtualenv of its own (the ``conformance-openai2`` extra).
"""

from __future__ import annotations

import os

from tests.conformance.record.context import Context
from tests.conformance.record.scenarios import LookupOrder, prompt, system_prompt


def record(ctx: Context) -> None:
    os.environ.update({"CREWAI_DISABLE_TELEMETRY": "true", "CREWAI_DISABLE_TRACKING": "true",
                       "CREWAI_TRACING_ENABLED": "false"})
    from crewai import LLM, Agent, Crew, Task
    from crewai.tools import tool
    from openinference.instrumentation.crewai import CrewAIInstrumentor
    from openinference.instrumentation.openai import OpenAIInstrumentor

    provider = ctx.tracer_provider("crewai-agent")
    CrewAIInstrumentor().instrument(tracer_provider=provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    body = LookupOrder(ctx.scenario)

    @tool("lookup_order")
    def lookup_order(order_id: str) -> str:
        """Look up the shipping state of an order."""
        return body(order_id)

    llm = LLM(model="openai/gpt-4o-mini", base_url=ctx.model_url, api_key="sk-fake-offline", max_retries=0)
    agent = Agent(role="support_bot", goal="Answer where the customer's order is.", backstory=system_prompt(),
                  tools=[lookup_order], llm=llm, max_iter=5, max_retry_limit=0, verbose=False)
    task = Task(description=prompt(), expected_output="Where the order is.", agent=agent)
    Crew(agents=[agent], tasks=[task], verbose=False).kickoff()
