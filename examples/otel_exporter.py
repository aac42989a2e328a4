"""OpenTelemetry spans sent to AgentTracer's /v1/traces with their content stripped in the process.

Needs the extra: ``pip install 'agenttracer[otel]'``. Start the platform (``make up``), then from the
repository root::

    PYTHONPATH=. python examples/otel_exporter.py

An agent instrumented with the GenAI semantic conventions (as Pydantic AI, Logfire or OpenLLMetry emit
them) puts its prompt, the model's answer and the tool's arguments into span attributes and events.
``MetadataOnlySpanExporter`` rebuilds every span from the allow-list before the OTLP exporter sees it:
the model name, token counts, tool name and exception class leave the process; the content does not.
The Ingest API names the run's agent after ``gen_ai.agent.name`` (here ``weather-agent``).
The Ingest API address comes from ``AGENTTRACER_API_URL`` (default http://localhost:8000).
"""

from __future__ import annotations

import os

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from agenttracer.integrations.otel import MetadataOnlySpanExporter

API_URL = os.environ.get("AGENTTRACER_API_URL", "http://localhost:8000").rstrip("/")
QUERY_URL = os.environ.get("AGENTTRACER_QUERY_URL", "http://localhost:8001")


def main() -> None:
    exporter = MetadataOnlySpanExporter(OTLPSpanExporter(endpoint=f"{API_URL}/v1/traces", timeout=10))
    provider = TracerProvider(resource=Resource.create({"service.name": "weather-service",
                                                        "service.version": "v0.3.0",
                                                        "deployment.environment.name": "demo",
                                                        "agenttracer.project": "demo"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("examples.otel_exporter")

    question = "What is the weather in Lisbon tomorrow?"  # content: stays in this process
    with tracer.start_as_current_span("invoke_agent weather-agent", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather-agent",
            "input.value": question}):
        with tracer.start_as_current_span("chat demo-model", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "demo-model",
                "gen_ai.usage.input_tokens": 310, "gen_ai.usage.output_tokens": 42, "gen_ai.prompt": question}):
            pass
        with tracer.start_as_current_span("execute_tool get_forecast", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_forecast",
                "gen_ai.tool.call.arguments": '{"city": "Lisbon"}'}) as tool:
            tool.record_exception(TimeoutError("forecast service for Lisbon timed out"))
            tool.set_status(Status(StatusCode.ERROR, "forecast service for Lisbon timed out"))
            tool.set_attribute("error.type", "TimeoutError")
        with tracer.start_as_current_span("execute_tool get_forecast", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_forecast"}):
            pass

    provider.shutdown()  # flushes the batch through the exporter
    stats = exporter.stats()
    print(f"exported {stats.get('spans_exported', 0)} spans, dropped {stats.get('spans_dropped', 0)}; "
          f"{stats.get('attributes_dropped', 0)} content attributes never left the process")
    print("Look at the result:")
    print(f"  curl '{QUERY_URL}/v1/runs?agent_id=weather-agent'")
    print("  or the dashboard at http://localhost:3000")


if __name__ == "__main__":
    main()
