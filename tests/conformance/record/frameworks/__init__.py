"""One module per recorded framework, each with ``record(ctx)`` running the scenario ``ctx.scenario``.

``FRAMEWORKS`` says, per recording directory, what the recording holds (``otlp``: /v1/traces exports;
``ingest``: the /v1/ingest batches of our native integration) and which packages' versions to note.
"""

from __future__ import annotations

from typing import Any

FRAMEWORKS: dict[str, dict[str, Any]] = {
    "openai-v2": {"kind": "otlp", "packages": ("openai", "opentelemetry-instrumentation-openai-v2")},
    "pydantic-ai": {"kind": "otlp", "packages": ("pydantic-ai-slim", "openai")},
    "logfire": {"kind": "otlp", "packages": ("logfire", "pydantic-ai-slim", "openai")},
    "traceloop": {"kind": "otlp", "packages": ("traceloop-sdk", "openai"),
                  "env": {"TRACELOOP_METRICS_ENABLED": "false", "TRACELOOP_TELEMETRY": "false",
                          "TRACELOOP_TRACE_CONTENT": "true"}},
    "openai-agents-native": {"kind": "ingest", "packages": ("openai-agents", "openai")},
    "openai-agents-openinference": {"kind": "otlp",
                                    "packages": ("openai-agents", "openinference-instrumentation-openai-agents")},
    "langgraph-native": {"kind": "ingest", "packages": ("langgraph", "langchain-core", "langchain-openai")},
    "langgraph-openinference": {"kind": "otlp", "packages": ("langgraph", "langchain-openai",
                                                             "openinference-instrumentation-langchain")},
    "llamaindex": {"kind": "otlp", "packages": ("llama-index-core", "llama-index-llms-openai",
                                                "openinference-instrumentation-llama-index")},
    "smolagents": {"kind": "otlp", "packages": ("smolagents", "openinference-instrumentation-smolagents")},
    "crewai": {"kind": "otlp", "packages": ("crewai", "openinference-instrumentation-crewai",
                                            "openinference-instrumentation-openai")},
    "vercel-ai": {"kind": "otlp", "packages": ("node",)},
}
