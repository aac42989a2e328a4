"""``import agenttracer`` (and the integrations package itself) loads none of the frameworks."""

from __future__ import annotations

import ast
import subprocess
import sys

FRAMEWORKS = ("langchain_core", "langgraph", "agents", "opentelemetry", "openai")


def loaded_after(statement: str) -> list[str]:
    code = f"import sys\n{statement}\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return list(ast.literal_eval(result.stdout))


def test_importing_agenttracer_loads_no_framework() -> None:
    assert loaded_after("import agenttracer, agenttracer.integrations, agenttracer.sdk.tracer") == []


def test_each_integration_loads_only_its_own_framework() -> None:
    # The check above is not vacuous: importing an integration does load its framework.
    assert "langchain_core" in {m.split(".")[0] for m in loaded_after("import agenttracer.integrations.langchain")}
    assert {m.split(".")[0] for m in loaded_after("import agenttracer.integrations.otel")} == {"opentelemetry"}
