"""An OpenAI Agents SDK workflow traced by AgentTracerProcessor, offline (a canned model, no API key).

Needs the extra: ``pip install 'agenttracer[openai-agents]'``. Start the platform (``make up``), then
from the repository root::

    PYTHONPATH=. python examples/openai_agents_agent.py

A triage agent hands off to a billing agent, whose invoice tool fails once and is called again. Only
our processor is installed (``set_trace_processors``), so nothing goes to OpenAI. A second run hits
its turn limit and fails as ``orchestration``/``max_iterations``. Messages, tool arguments and results
never leave the process. The Ingest API address comes from ``AGENTTRACER_API_URL``.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from agents import Agent, MaxTurnsExceeded, ModelResponse, Runner, function_tool, set_trace_processors
from agents.models.interface import Model
from agents.tracing import SpanError, generation_span
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from agenttracer import AgentTracer
from agenttracer.integrations.openai_agents import AgentTracerProcessor

QUERY_URL = os.environ.get("AGENTTRACER_QUERY_URL", "http://localhost:8001")


def tool_call(name: str, arguments: dict[str, Any], n: int) -> list[Any]:
    return [ResponseFunctionToolCall(type="function_call", call_id=f"call_{n}", id=f"fc_{n}", name=name,
                                     arguments=json.dumps(arguments), status="completed")]


def reply(text: str) -> list[Any]:
    return [ResponseOutputMessage(id="msg", type="message", role="assistant", status="completed",
                                  content=[ResponseOutputText(type="output_text", text=text, annotations=[])])]


class CannedModel(Model):
    """Plays back canned turns, tracing each call as the SDK's OpenAI models do (a generation span)."""

    def __init__(self, turns: list[list[Any]]) -> None:
        self.turns = turns

    async def get_response(self, system_instructions: Any, input: Any, model_settings: Any, tools: Any,
                           output_schema: Any, handoffs: Any, tracing: Any, *, previous_response_id: Any = None,
                           conversation_id: Any = None, prompt: Any = None) -> ModelResponse:
        with generation_span(model="demo-model", disabled=tracing.is_disabled()) as span:
            if not self.turns:
                span.set_error(SpanError(message="Error getting response", data={}))
                raise RuntimeError("no canned turn left")
            span.span_data.usage = {"input_tokens": 120, "output_tokens": 30}
            return ModelResponse(output=self.turns.pop(0), response_id=None,
                                 usage=Usage(requests=1, input_tokens=120, output_tokens=30, total_tokens=150))

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


invoice_calls = 0


@function_tool
def fetch_invoice(invoice_id: str) -> str:
    """Fetch an invoice from the billing system."""
    global invoice_calls
    invoice_calls += 1
    if invoice_calls == 1:
        raise TimeoutError("billing system timed out")
    return f"invoice {invoice_id}: paid"


async def main() -> None:
    tracer = AgentTracer(agent_id="agents-sdk-billing", agent_version="v1.0.0", environment="demo", project="demo")
    set_trace_processors([AgentTracerProcessor(tracer)])

    model = CannedModel([tool_call("transfer_to_billing", {}, 1), tool_call("fetch_invoice", {"invoice_id": "I-7"}, 2),
                         tool_call("fetch_invoice", {"invoice_id": "I-7"}, 3), reply("Invoice I-7 is paid.")])
    billing = Agent(name="billing", instructions="Answer billing questions.", model=model, tools=[fetch_invoice])
    triage = Agent(name="triage", instructions="Route the customer.", model=model, handoffs=[billing])
    result = await Runner.run(triage, "Is invoice I-7 paid?")
    print(f"answered: {result.final_output!r} after {invoice_calls} invoice calls")

    looping = Agent(name="poller", instructions="Poll until done.", tools=[fetch_invoice],
                    model=CannedModel([tool_call("fetch_invoice", {"invoice_id": "I-8"}, n) for n in range(4, 9)]))
    try:
        await Runner.run(looping, "Wait for invoice I-8.", max_turns=2)
    except MaxTurnsExceeded:
        print("the poller stopped at its turn limit")

    tracer.shutdown(timeout=5.0)
    stats = tracer.stats()
    print(f"delivered {stats.delivered} of {stats.produced} events, dropped {stats.dropped_total}")
    print("Look at the result:")
    print(f"  curl '{QUERY_URL}/v1/runs?agent_id=agents-sdk-billing'")
    print("  or the dashboard at http://localhost:3000")


if __name__ == "__main__":
    asyncio.run(main())
