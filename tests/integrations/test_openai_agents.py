"""The OpenAI Agents SDK processor with the real SDK, offline: a fake ``Model`` returns canned tool calls.

The fake model behaves like the SDK's own OpenAI models towards tracing: it opens a ``generation``
span carrying the input, output, model name and usage (here: canaries). Only our processor is
installed (``set_trace_processors``), so nothing is exported to OpenAI. Runs on SQLite and PostgreSQL
against a capturing real Ingest API, read back through the Query API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelResponse,
    RunContextWrapper,
    Runner,
    function_tool,
    input_guardrail,
    set_trace_processors,
)
from agents.models.interface import Model
from agents.tracing import SpanError, generation_span
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from agenttracer import AgentTracer
from agenttracer.integrations.openai_agents import AgentTracerProcessor
from tests.integrations.conftest import CANARIES, FlakyLookup, LogCapture, assert_no_canaries, delivered, only_run
from tests.support.capture import Captured


def call(name: str, arguments: dict[str, Any], n: int) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(type="function_call", call_id=f"call_{n}", name=name, id=f"fc_{n}",
                                    arguments=json.dumps(arguments), status="completed")


def answer(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(id="msg_1", type="message", role="assistant", status="completed",
                                 content=[ResponseOutputText(type="output_text", text=text, annotations=[])])


class ModelDown(Exception):
    """What a provider raises when it cannot answer (a canary message)."""


class CannedModel(Model):
    """Plays back one canned turn per call: a list of output items, or an exception to raise."""

    def __init__(self, *turns: Any) -> None:
        self.turns = list(turns)

    async def get_response(self, system_instructions: Any, input: Any, model_settings: Any, tools: Any,
                           output_schema: Any, handoffs: Any, tracing: Any, *, previous_response_id: Any = None,
                           conversation_id: Any = None, prompt: Any = None) -> ModelResponse:
        with generation_span(model="canned-model", input=[{"role": "user", "content": CANARIES["prompt"]}],
                             disabled=tracing.is_disabled()) as span:
            turn = self.turns.pop(0)
            if isinstance(turn, Exception):
                span.set_error(SpanError(message="Error getting response", data={"error": str(turn)}))
                raise turn
            span.span_data.output = [{"role": "assistant", "content": CANARIES["output"]}]
            span.span_data.usage = {"input_tokens": 21, "output_tokens": 8}
            return ModelResponse(output=turn, usage=Usage(requests=1, input_tokens=21, output_tokens=8,
                                                          total_tokens=29), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@pytest.fixture
def processor(tracer: AgentTracer) -> Iterator[AgentTracerProcessor]:
    made = AgentTracerProcessor(tracer)
    set_trace_processors([made])  # ours only: the default export to OpenAI is off
    yield made
    set_trace_processors([])
    stats = made.stats()
    assert (stats["open_traces"], stats["open_spans"]) == (0, 0) and not any(
        key.startswith("callback_error") for key in stats), stats


def test_a_handoff_a_failing_tool_and_tokens_are_recorded_and_no_content_is_sent(
        processor: AgentTracerProcessor, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    flaky = FlakyLookup()

    @function_tool
    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        return flaky(order_id)

    @input_guardrail
    def no_secrets(ctx: RunContextWrapper[Any], agent: Agent[Any], text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=CANARIES["output"], tripwire_triggered=False)

    model = CannedModel(
        [call("transfer_to_billing", {}, 1)],
        [call("lookup_order", {"order_id": CANARIES["tool_args"]}, 2)],
        [call("lookup_order", {"order_id": CANARIES["tool_args"]}, 3)],
        [answer(CANARIES["output"])],
    )
    billing = Agent(name="billing", instructions=CANARIES["system"], model=model, tools=[lookup_order])
    triage = Agent(name="triage", instructions=CANARIES["system"], model=model, handoffs=[billing],
                   input_guardrails=[no_secrets])
    result = asyncio.run(Runner.run(triage, CANARIES["input"]))
    assert result.final_output == CANARIES["output"] and flaky.calls == 2
    delivered(tracer)

    detail = only_run(live_query)
    run = detail["run"]
    assert run["status"] == "success"  # the tool's failed call was retried successfully
    assert detail["failure"] is None
    assert run["meta"] == {"framework": "openai-agents", "workflow": "Agent workflow", "agent_name": "triage"}
    assert [(s["seq"], s["step_type"], s["name"], s["status"], s["attempt"], s["retry_of_seq"], s["parent_seq"])
            for s in detail["steps"]] == [
        (1, "other", "triage", "ok", 1, None, None),
        (2, "other", "no_secrets", "ok", 1, None, 1),
        (3, "llm", "generation", "ok", 1, None, 1),
        (4, "other", "handoff", "ok", 1, None, 1),
        (5, "other", "billing", "ok", 1, None, None),
        (6, "llm", "generation", "ok", 1, None, 5),
        (7, "tool", "lookup_order", "error", 1, None, 5),
        (8, "llm", "generation", "ok", 1, None, 5),
        (9, "tool", "lookup_order", "ok", 2, 7, 5),
        (10, "llm", "generation", "ok", 1, None, 5),
    ]
    steps = detail["steps"]
    assert steps[1]["meta"] == {"triggered": False}
    assert steps[2]["meta"] == {"model": "canned-model", "tokens_in": 21, "tokens_out": 8}
    assert steps[3]["meta"] == {"from_agent": "triage", "to_agent": "billing"}
    assert (steps[6]["error_class"], steps[6]["failure_code"]) == ("ToolError", "unhandled_exception")
    assert_no_canaries(captured_ingest, db_url, logs)


def test_a_run_past_its_max_turns_fails_as_max_iterations(
        processor: AgentTracerProcessor, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    @function_tool
    def poll(job: str) -> str:
        """Poll a job."""
        return CANARIES["tool_output"]

    model = CannedModel(*[[call("poll", {"job": CANARIES["tool_args"]}, n)] for n in range(5)])
    agent = Agent(name="poller", instructions=CANARIES["system"], model=model, tools=[poll])
    with pytest.raises(MaxTurnsExceeded):
        asyncio.run(Runner.run(agent, CANARIES["input"], max_turns=2))
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "failure"
    failure = detail["failure"]
    assert (failure["failure_type"], failure["failure_code"], failure["step_seq"]) == (
        "orchestration", "max_iterations", 1)
    assert (detail["steps"][0]["name"], detail["steps"][0]["error_class"]) == ("poller", "MaxTurnsExceeded")
    assert_no_canaries(captured_ingest, db_url, logs)


def test_a_model_that_stays_down_is_a_model_failure_with_the_errors_class(
        processor: AgentTracerProcessor, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    agent = Agent(name="writer", instructions=CANARIES["system"],
                  model=CannedModel(ModelDown(CANARIES["exception"])))
    with pytest.raises(ModelDown):
        asyncio.run(Runner.run(agent, CANARIES["input"]))
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "failure"
    assert [(s["step_type"], s["status"], s.get("error_class")) for s in detail["steps"]] == [
        ("other", "error", "ModelDown"), ("llm", "error", "ModelDown")]
    failure = detail["failure"]
    assert (failure["failure_type"], failure["failure_code"], failure["step_seq"]) == (
        "model", "unhandled_exception", 2)
    assert_no_canaries(captured_ingest, db_url, logs)


def _rate_limited() -> openai.RateLimitError:
    request = httpx.Request("POST", "https://api.openai.test/v1/responses")
    return openai.RateLimitError(CANARIES["exception"], response=httpx.Response(429, request=request), body=None)


def test_a_rate_limited_model_call_is_a_model_failure_rate_limited(
        processor: AgentTracerProcessor, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    agent = Agent(name="writer", instructions=CANARIES["system"], model=CannedModel(_rate_limited()))
    with pytest.raises(openai.RateLimitError):
        asyncio.run(Runner.run(agent, CANARIES["input"]))
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "failure"
    assert [(s["step_type"], s["status"], s.get("error_class"), s.get("failure_code")) for s in detail["steps"]] == [
        ("other", "error", "RateLimitError", "rate_limited"), ("llm", "error", "RateLimitError", "rate_limited")]
    failure = detail["failure"]
    assert (failure["failure_type"], failure["failure_code"], failure["step_seq"]) == ("model", "rate_limited", 2)
    assert_no_canaries(captured_ingest, db_url, logs)


def test_an_exception_already_being_handled_around_the_run_is_not_taken_for_a_steps_error(
        processor: AgentTracerProcessor, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    @function_tool
    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        raise ConnectionError(CANARIES["exception"])

    model = CannedModel([call("lookup_order", {"order_id": CANARIES["tool_args"]}, 1)], [answer(CANARIES["output"])])
    agent = Agent(name="support", instructions=CANARIES["system"], model=model, tools=[lookup_order])
    try:
        raise KeyError("an error the application is handling")
    except KeyError:
        asyncio.run(Runner.run(agent, CANARIES["input"]))  # the tool's error goes back to the model
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "partial"  # it answered past a tool that never worked
    tool = next(s for s in detail["steps"] if s["step_type"] == "tool")
    assert (tool["status"], tool["error_class"], tool["failure_code"]) == ("error", "ToolError", "unhandled_exception")
    assert_no_canaries(captured_ingest, db_url, logs)


def test_a_tripped_guardrail_is_an_orchestration_failure_guardrail_tripped(
        processor: AgentTracerProcessor, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    @input_guardrail
    def blocks_everything(ctx: RunContextWrapper[Any], agent: Agent[Any], text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=CANARIES["output"], tripwire_triggered=True)

    agent = Agent(name="guarded", instructions=CANARIES["system"], model=CannedModel([answer(CANARIES["output"])]),
                  input_guardrails=[blocks_everything])
    with pytest.raises(InputGuardrailTripwireTriggered):
        asyncio.run(Runner.run(agent, CANARIES["input"]))
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "failure"
    guardrail = next(s for s in detail["steps"] if s["name"] == "blocks_everything")
    assert (guardrail["status"], guardrail["failure_code"], guardrail["meta"]) == (
        "error", "guardrail_tripped", {"triggered": True})
    failure = detail["failure"]
    assert (failure["failure_type"], failure["failure_code"], failure["step_seq"]) == (
        "orchestration", "guardrail_tripped", guardrail["seq"])
    assert_no_canaries(captured_ingest, db_url, logs)


def test_spans_are_bounded_and_odd_callbacks_never_raise(tracer: AgentTracer, captured_ingest: Captured,
                                                         live_query: str) -> None:
    processor = AgentTracerProcessor(tracer, max_open_spans=2, max_open_traces=1)

    class Thing:
        def __init__(self, **kw: Any) -> None:
            self.__dict__.update(kw)

    processor.on_trace_start(Thing(trace_id="t1", name="wf"))
    for n in range(4):
        processor.on_span_start(Thing(span_id=f"s{n}", trace_id="t1", parent_id=None,
                                      span_data=Thing(type="function", name="tool")))
    processor.on_span_start(Thing(span_id="x", trace_id="never-started", parent_id=None, span_data=None))
    processor.on_span_end(Thing(span_id="unknown"))
    processor.on_trace_start(Thing(trace_id=None))
    processor.on_trace_start(Thing(trace_id="t2", name=None))  # evicts t1: its run is ended
    processor.on_span_end(object())
    stats = processor.stats()
    assert stats == {"evicted_spans": 2, "unknown_trace": 1, "evicted_traces": 1, "unfinished": 2,
                     "open_traces": 1, "open_spans": 0}, stats
    processor.on_trace_end(Thing(trace_id="t2"))
    processor.shutdown()
    processor.force_flush()
    delivered(tracer)
    import httpx

    runs = httpx.get(f"{live_query}/v1/runs", timeout=10).json()["items"]
    assert sorted(r["status"] for r in runs) == ["success", "success"]
