"""What each framework integration costs per framework step, beside what the framework itself costs.

Run from the repository root (``make bench`` runs it too)::

    .venv/bin/python bench/integrations_overhead.py [--rounds 5] [--steps 2000]

Measured side by side, in turn, in each round (medians per step, in microseconds):

* LangChain: one ``tool.invoke`` inside an outer chain (its ``on_tool_start`` + ``on_tool_end``) with
  no callback handler (the framework's own cost per step), with a handler whose methods do nothing
  (the framework's callback dispatch), and with ``AgentTracerCallbackHandler``. The handler's own cost
  is the last minus the no-op one.
* OpenAI Agents SDK: one ``function_span`` inside a trace with no processor, a no-op processor and
  ``AgentTracerProcessor``; and a whole ``Runner.run`` (a canned model calling one tool, then answering:
  six spans) with no processor and with ours, to put the span figures beside a real turn.
* OpenTelemetry: ``MetadataOnlySpanExporter`` rebuilding a batch of GenAI spans, per span, beside the
  OTLP exporter's own protobuf encoding of the same spans (both run in the BatchSpanProcessor's thread).

The tracer sends to a real Ingest API subprocess on loopback (SQLite in a temporary directory), as in
``bench/sdk_overhead.py``, whose server helper this script reuses.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdk_overhead import ingest_server  # noqa: E402

from agenttracer import AgentTracer  # noqa: E402

ns = time.perf_counter_ns


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def report(title: str, rows: dict[str, list[float]], own: tuple[str, str], base: str) -> None:
    """Print the median of the per-round medians per contender, and the integration's own cost."""
    print(f"\n== {title}")
    medians = {name: statistics.median(values) for name, values in rows.items()}
    for name, value in medians.items():
        print(f"{name:34s} {value:9.2f} us   (rounds: {min(rows[name]):.2f} .. {max(rows[name]):.2f})")
    cost = medians[own[0]] - medians[own[1]]
    print(f"{'own cost (' + own[0] + ' - ' + own[1] + ')':34s} {cost:9.2f} us   = {cost / medians[base]:.2f}x "
          f"the framework's own per-step cost ({base})")


# ----------------------------------------------------------------------------- LangChain


def bench_langchain(tracer: AgentTracer, rounds: int, steps: int) -> None:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.runnables import RunnableConfig, RunnableLambda
    from langchain_core.tools import tool

    from agenttracer.integrations.langchain import AgentTracerCallbackHandler

    @tool
    def lookup(order_id: str) -> str:
        """Look an order up."""
        return order_id

    class Noop(BaseCallbackHandler):
        run_inline = True

    def loop(_: Any, config: RunnableConfig) -> list[int]:
        samples = []
        for i in range(steps):
            t0 = ns()
            lookup.invoke({"order_id": "A-1"}, config)
            samples.append(ns() - t0)
            if i % 500 == 499:
                tracer.flush(0.5)  # the agent's think time: delivery keeps up, as it would
        return samples

    outer = RunnableLambda(loop)
    contenders: dict[str, Callable[[], list[Any]]] = {
        "no handler": lambda: [],
        "no-op handler (dispatch)": lambda: [Noop()],
        "AgentTracerCallbackHandler": lambda: [AgentTracerCallbackHandler(tracer)],
    }
    rows: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, handlers in contenders.items():
            gc.collect()
            rows[name].append(median_us(outer.invoke(None, config={"callbacks": handlers()})))
        tracer.flush(5.0)
    report("LangChain: one tool step (tool.invoke inside a chain)", rows,
           ("AgentTracerCallbackHandler", "no-op handler (dispatch)"), "no handler")
    handler = AgentTracerCallbackHandler(tracer)
    root = uuid.uuid4()
    handler.on_chain_start({}, None, run_id=root, name="bench")
    serialized = {"name": "lookup"}
    direct = []
    for _ in range(rounds):
        samples = []
        for i in range(steps):
            run_id = uuid.uuid4()
            t0 = ns()
            handler.on_tool_start(serialized, "", run_id=run_id, parent_run_id=root, tags=[], metadata={})
            handler.on_tool_end("", run_id=run_id, parent_run_id=root)
            samples.append(ns() - t0)
            if i % 500 == 499:
                tracer.flush(0.5)
        direct.append(median_us(samples))
    handler.on_chain_end(None, run_id=root)
    print(f"{'on_tool_start + on_tool_end, direct':34s} {statistics.median(direct):9.2f} us   (the handler alone)")


# ----------------------------------------------------------------------- OpenAI Agents SDK


def bench_openai_agents(tracer: AgentTracer, rounds: int, steps: int) -> None:
    from agents import Agent, ModelResponse, Runner, function_tool, set_trace_processors
    from agents.models.interface import Model
    from agents.tracing import TracingProcessor, function_span, generation_span, trace
    from agents.usage import Usage
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    from agenttracer.integrations.openai_agents import AgentTracerProcessor

    class Noop(TracingProcessor):
        def on_trace_start(self, trace: Any) -> None: ...
        def on_trace_end(self, trace: Any) -> None: ...
        def on_span_start(self, span: Any) -> None: ...
        def on_span_end(self, span: Any) -> None: ...
        def shutdown(self) -> None: ...
        def force_flush(self) -> None: ...

    def spans() -> list[int]:
        samples = []
        with trace("bench"):
            for i in range(steps):
                t0 = ns()
                with function_span(name="lookup"):
                    pass
                samples.append(ns() - t0)
                if i % 500 == 499:
                    tracer.flush(0.5)
        return samples

    class Canned(Model):
        def __init__(self) -> None:
            self.called = False

        async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
            with generation_span(model="bench-model"):
                output: list[Any]
                if not self.called:
                    self.called = True
                    output = [ResponseFunctionToolCall(type="function_call", call_id="c1", id="f1", name="lookup",
                                                       arguments=json.dumps({"order_id": "A-1"}), status="completed")]
                else:
                    output = [ResponseOutputMessage(id="m", type="message", role="assistant", status="completed",
                                                    content=[ResponseOutputText(type="output_text", text="done",
                                                                                annotations=[])])]
                return ModelResponse(output=output, usage=Usage(requests=1), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    # An async tool: a sync one runs in a worker thread, and the GIL hand-offs between threads (up to the
    # 5 ms switch interval) would drown the processor's own microseconds in noise.
    @function_tool
    async def lookup(order_id: str) -> str:
        """Look an order up."""
        return order_id

    async def runner_runs(count: int, contenders: dict[str, list[Any]]) -> dict[str, list[int]]:
        """Runs alternate between the contenders, one at a time, so that both see the same machine load."""
        samples: dict[str, list[int]] = {name: [] for name in contenders}
        for _ in range(count):
            for name, installed in contenders.items():
                set_trace_processors(installed)
                agent = Agent(name="bench", instructions="x", model=Canned(), tools=[lookup])
                t0 = ns()
                await Runner.run(agent, "x")
                samples[name].append(ns() - t0)
        return samples

    processors: dict[str, Callable[[], list[Any]]] = {
        "no processor": lambda: [],
        "no-op processor (dispatch)": lambda: [Noop()],
        "AgentTracerProcessor": lambda: [AgentTracerProcessor(tracer)],
    }
    rows: dict[str, list[float]] = {name: [] for name in processors}
    whole: dict[str, list[float]] = {"Runner.run, no processor": [], "Runner.run, AgentTracerProcessor": []}
    try:
        for _ in range(rounds):
            for name, make in processors.items():
                set_trace_processors(make())
                gc.collect()
                rows[name].append(median_us(spans()))
            tracer.flush(5.0)
            ours = AgentTracerProcessor(tracer)
            runs = asyncio.run(runner_runs(max(20, steps // 50), {  # one event loop, as a serving agent has
                "Runner.run, no processor": [], "Runner.run, AgentTracerProcessor": [ours]}))
            for name, samples in runs.items():
                whole[name].append(median_us(samples))
            tracer.flush(5.0)
    finally:
        set_trace_processors([])
    report("OpenAI Agents SDK: one function span inside a trace", rows,
           ("AgentTracerProcessor", "no-op processor (dispatch)"), "no processor")
    processor = AgentTracerProcessor(tracer)
    set_trace_processors([])
    with trace("bench") as current:
        processor.on_trace_start(current)
        spans_made = []
        for _ in range(steps):
            span = function_span(name="lookup", parent=current)
            spans_made.append(span)
        direct = []
        for _ in range(1):
            samples = []
            for span in spans_made:
                t0 = ns()
                processor.on_span_start(span)
                processor.on_span_end(span)
                samples.append(ns() - t0)
            direct.append(median_us(samples))
        processor.on_trace_end(current)
    print(f"{'on_span_start + on_span_end, direct':34s} {statistics.median(direct):9.2f} us   (the processor alone)")
    report("OpenAI Agents SDK: one Runner.run (canned model, one tool call, six spans)", whole,
           ("Runner.run, AgentTracerProcessor", "Runner.run, no processor"), "Runner.run, no processor")


# ---------------------------------------------------------------------------- OpenTelemetry


def bench_otel_exporter(rounds: int, steps: int) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agenttracer.integrations.otel import MetadataOnlySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    otel = provider.get_tracer("bench")
    for i in range(512):
        with otel.start_as_current_span("chat bench-model", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "bench-model",
                "gen_ai.usage.input_tokens": 100 + i, "gen_ai.usage.output_tokens": 20,
                "gen_ai.prompt": "a prompt " * 20, "gen_ai.completion": "an answer " * 20,
                "llm.input_messages.0.message.content": "content " * 10}) as span:
            span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "a prompt"})
    batch = list(memory.get_finished_spans())

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    wrapper = MetadataOnlySpanExporter(Discard())
    rows: dict[str, list[float]] = {"OTLP protobuf encoding": [], "MetadataOnlySpanExporter rebuild": []}
    for _ in range(rounds):
        for name, work in (("OTLP protobuf encoding", lambda: encode_spans(batch).SerializeToString()),
                           ("MetadataOnlySpanExporter rebuild", lambda: wrapper.export(batch))):
            gc.collect()
            samples = []
            for _ in range(max(3, steps // 200)):
                t0 = ns()
                work()
                samples.append((ns() - t0) // len(batch))
            rows[name].append(median_us(samples))
    provider.shutdown()
    print(f"\n== OpenTelemetry: per span, batches of {len(batch)} GenAI spans (in the exporter thread)")
    for name, values in rows.items():
        print(f"{name:34s} {statistics.median(values):9.2f} us   (rounds: {min(values):.2f} .. {max(values):.2f})")
    ratio = statistics.median(rows["MetadataOnlySpanExporter rebuild"]) / statistics.median(
        rows["OTLP protobuf encoding"])
    print(f"{'rebuild / encoding':34s} {ratio:9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2_000)
    args = parser.parse_args()
    with ingest_server() as url:
        tracer = AgentTracer(agent_id="bench-integrations", api_url=url, environment="bench")
        bench_langchain(tracer, args.rounds, args.steps)
        bench_openai_agents(tracer, args.rounds, args.steps)
        tracer.shutdown(5.0)
        stats = tracer.stats()
        print(f"\ndelivery: produced={stats.produced} delivered={stats.delivered} dropped={stats.dropped}")
    bench_otel_exporter(args.rounds, args.steps)


if __name__ == "__main__":
    main()
