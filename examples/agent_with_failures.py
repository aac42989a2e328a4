"""One run per failure type — tool, model, retrieval, orchestration — and how each is recorded.

Start the platform (``make up``), then from the repository root::

    PYTHONPATH=. python examples/agent_with_failures.py

What to look for afterwards: every failed run has a failure type and code, linked to the step that
caused it; error steps keep the exception's class name and a mapped code, never its message; a run
whose error was handled without giving up ends ``partial``. The Ingest API address comes from
``AGENTTRACER_API_URL`` (default http://localhost:8000).
"""

from __future__ import annotations

import json
import os
import time

from sdk.agenttrace import AgentTracer

# Where the printed hints point: the Query API the CLI uses too.
QUERY_URL = os.environ.get("AGENTTRACER_QUERY_URL", "http://localhost:8001")

tracer = AgentTracer(agent_id="ops-agent", agent_version="v0.9.0", environment="demo", project="demo")


def call_external_api() -> dict[str, str]:
    time.sleep(0.01)
    raise TimeoutError("simulated: the shipping API did not answer within 30 s")


def tool_failure() -> None:
    """A tool times out: the spec's try/except pattern, recorded after the step's block exited."""
    with tracer.start_run() as run:
        with run.step("plan", "analyze"):
            pass
        try:
            with run.step("tool", "external_api"):
                call_external_api()
        except TimeoutError:
            run.record_failure(failure_type="tool", failure_code="timeout", message="Shipping API timeout after 30s")
            return


def model_failure() -> None:
    """The model's output cannot be parsed; the step is an error step (JSONDecodeError -> invalid_output)."""
    with tracer.start_run() as run:
        with run.step("plan", "choose_tool"):
            pass
        try:
            with run.step("llm", "extract_order_fields") as step:
                step.set(model="demo-model-large", tokens_in=1400)
                json.loads("{not json")  # stands in for a malformed model answer
        except json.JSONDecodeError:
            run.record_failure(failure_type="model", failure_code="invalid_output")  # links the error step


def retrieval_failure() -> None:
    """Retrieval returns nothing: no exception, so the failure names its step explicitly."""
    with tracer.start_run() as run:
        with run.step("retrieval", "policy_search") as search:
            search.set(result_count=0, index="policies-v3")
        run.record_failure(failure_type="retrieval", failure_code="empty_result", step=search,
                           message="no policy matched the request category")


def orchestration_failure() -> None:
    """The agent loop exhausts its step budget."""
    with tracer.start_run() as run:
        for i in range(3):
            with run.step("plan", "replan") as step:
                step.set(iteration=i + 1)
        run.record_failure(failure_type="orchestration", failure_code="max_iterations",
                           message="gave up after 3 planning iterations")


def unhandled_exception() -> None:
    """An exception escapes the run: recorded as orchestration / unhandled_exception, then re-raised."""
    with tracer.start_run() as run, run.step("tool", "inventory_lookup"):
        raise KeyError("sku")


def partial_run() -> None:
    """A step fails but the agent carries on with a fallback: the run ends ``partial``."""
    with tracer.start_run() as run:
        try:
            with run.step("tool", "recommendations_api"):
                raise ConnectionError("simulated")
        except ConnectionError:
            pass
        with run.step("respond", "answer_without_recommendations"):
            pass


def main() -> None:
    for scenario in (tool_failure, model_failure, retrieval_failure, orchestration_failure, partial_run):
        scenario()
        print(f"{scenario.__name__:24s} recorded")
    try:
        unhandled_exception()
    except KeyError:
        print(f"{'unhandled_exception':24s} recorded (and the KeyError reached the caller unchanged)")
    tracer.shutdown(timeout=5.0)
    stats = tracer.stats()
    print(f"delivered {stats.delivered} of {stats.produced} events, dropped {stats.dropped_total}")
    print("Look at the result:")
    print(f"  curl '{QUERY_URL}/v1/runs?agent_id=ops-agent&status=failure'")
    print(f"  curl '{QUERY_URL}/v1/stats?agent_id=ops-agent'")
    print("  or the dashboard at http://localhost:3000")


if __name__ == "__main__":
    main()
