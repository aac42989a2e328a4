"""OpenLLMetry / Traceloop: ``Traceloop.init`` with an OTLP exporter, its OpenAI instrumentation, and
the hand-written tool loop under ``@agent`` with the tool under ``@tool``.

Run with ``TRACELOOP_METRICS_ENABLED=false`` (AgentTracer serves no /v1/metrics) and
``TRACELOOP_TELEMETRY=false`` (no usage ping: the recorder is offline).
"""

from __future__ import annotations

import json
from typing import Any

from tests.conformance.record.context import ENVIRONMENT, Context
from tests.conformance.record.frameworks.handloop import TOOLS
from tests.conformance.record.scenarios import LookupOrder, prompt, system_prompt


def record(ctx: Context) -> None:
    import openai
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import agent, tool

    Traceloop.init(app_name="traceloop-agent", exporter=OTLPSpanExporter(endpoint=f"{ctx.receiver_url}/v1/traces"),
                   resource_attributes={"service.version": ctx.version, "deployment.environment.name": ENVIRONMENT},
                   telemetry_enabled=False)
    ctx.closers.append(lambda: Traceloop.get_tracer_provider().shutdown()
                       if hasattr(Traceloop, "get_tracer_provider") else None)
    client = openai.OpenAI(base_url=ctx.model_url, api_key="sk-fake-offline", max_retries=0)
    body = LookupOrder(ctx.scenario)

    @tool(name="lookup_order")
    def lookup_order(order_id: str) -> str:
        return body(order_id)

    @agent(name="support_bot")
    def support_bot() -> str | None:
        messages: list[Any] = [{"role": "system", "content": system_prompt()}, {"role": "user", "content": prompt()}]
        for _ in range(6):
            message = client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                                     tools=TOOLS).choices[0].message
            if not message.tool_calls:
                return str(message.content)
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                try:
                    result = lookup_order(**json.loads(call.function.arguments))
                except ConnectionError as exc:
                    result = f"error: {exc}"
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        return None

    support_bot()
