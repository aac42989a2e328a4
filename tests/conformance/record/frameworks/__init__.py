"""One module per recorded framework, each with ``record(ctx)`` running the scenario ``ctx.scenario``.

``FRAMEWORKS`` says, per recording directory, what the recording holds (``otlp``: /v1/traces exports;
``ingest``: the /v1/ingest batches of our native integration) and which packages' versions to note.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.conformance.record.context import VERSION_VARIABLE
from tests.conformance.record.scenarios import CANARIES, COMPLETION_TOKENS, PROMPT_TOKENS, SCRIPTS

NODE_DIR = Path(__file__).resolve().parents[2] / "node"

FRAMEWORKS: dict[str, dict[str, Any]] = {
    "openai-v2": {"kind": "otlp", "packages": ("opentelemetry-instrumentation-openai-v2", "openai")},
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


def command(framework: str, scenario: str, receiver_url: str, model_url: str, env: dict[str, str]) -> list[str]:
    """The command line that runs ``framework`` in ``scenario`` in a process of its own with ``env``."""
    if framework == "vercel-ai":
        setup = {"canaries": CANARIES, "script": SCRIPTS[scenario], "promptTokens": PROMPT_TOKENS,
                 "completionTokens": COMPLETION_TOKENS, "version": env.get(VERSION_VARIABLE, "1.0.0")}
        return ["node", str(NODE_DIR / "record.mjs"), scenario, receiver_url, json.dumps(setup)]
    return [sys.executable, "-m", "tests.conformance.record.run_one", framework, scenario, receiver_url, model_url]
