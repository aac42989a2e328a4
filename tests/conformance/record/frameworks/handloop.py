"""A hand-written tool loop over the OpenAI client, wrapped in one agent span so it is one run.

Used for the instrumentations that trace model calls but have no agent of their own (the official
``opentelemetry-instrumentation-openai-v2``): the loop opens an ``invoke_agent`` span and an
``execute_tool`` span per tool call, following the GenAI semantic conventions, and the
instrumentation adds a ``chat`` span per model call.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conformance.record.scenarios import TOOL_DESCRIPTION, TOOL_NAME, LookupOrder, prompt, system_prompt

TOOLS = [{"type": "function", "function": {
    "name": TOOL_NAME, "description": TOOL_DESCRIPTION,
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]


def run_agent(client: Any, tracer: Any, scenario: str, agent_name: str = "support_bot") -> str | None:
    from opentelemetry.trace import Status, StatusCode

    tool = LookupOrder(scenario)
    messages: list[Any] = [{"role": "system", "content": system_prompt()}, {"role": "user", "content": prompt()}]
    with tracer.start_as_current_span(f"invoke_agent {agent_name}", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent_name}):
        for _ in range(6):
            response = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
            message = response.choices[0].message
            if not message.tool_calls:
                return str(message.content)
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                with tracer.start_as_current_span(f"execute_tool {call.function.name}", attributes={
                        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.function.name,
                        "gen_ai.tool.call.id": call.id,
                        # the semantic conventions' opt-in content attributes: the server must drop them
                        "gen_ai.tool.call.arguments": call.function.arguments}) as span:
                    try:
                        result = tool(**json.loads(call.function.arguments))
                    except Exception as exc:
                        span.record_exception(exc)
                        span.set_status(Status(StatusCode.ERROR, str(exc)))
                        span.set_attribute("error.type", type(exc).__qualname__)
                        result = f"error: {exc}"
                    span.set_attribute("gen_ai.tool.call.result", result)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return None
