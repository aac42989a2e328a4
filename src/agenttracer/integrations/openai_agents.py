"""The OpenAI Agents SDK: ``AgentTracerProcessor(tracer)``, an ``agents.tracing.TracingProcessor``.

Install it with ``agents.add_trace_processor(processor)`` (beside the SDK's own export to OpenAI) or
``agents.set_trace_processors([processor])`` (instead of it: nothing then goes to OpenAI).

What becomes what:

* a trace is a run (inside a ``with tracer.start_run()`` block, that run); the workflow name and the
  first agent's name are run metadata (``workflow``, ``agent_name``); the run's ``agent_id`` is the
  tracer's;
* ``agent`` spans are ``other`` steps named by the agent, ``function`` spans ``tool`` steps named by
  the tool, ``generation``/``response`` spans ``llm`` steps (model name and token counts),
  ``handoff`` spans ``other`` steps named ``handoff`` (from/to agent names), ``guardrail`` spans
  ``other`` steps named by the guardrail (``triggered``); ``transcription``/``speech`` are ``llm`` steps,
  ``mcp_tools`` a ``tool`` step; other spans (custom, task, turn) are not steps, their children nest
  under the nearest step;
* a span with an error is an error step. Its class and code come from the exception in flight when
  the span ends, if one arose while the span was open (a provider's ``RateLimitError`` propagating
  through the model span gives ``rate_limited``; ``MaxTurnsExceeded`` through the agent span
  ``max_iterations``), through the one classifier (``agenttracer.failure_codes``); else from the SDK's
  fixed error texts (compared, never stored); else from the span type;
* retries are linked by the SDK's one rule (``agenttracer.verdict``): a call of a tool after its failed
  call (the SDK returns a tool's error to the model, which calls it again) and a model call after a
  failed one are retries of the failed attempt;
* the run fails when an agent span ends in error (the run stopped) or a guardrail trips
  (``guardrail_tripped``): the failure is typed by the error step that ended last before it (tool,
  model, else orchestration).

Read: ids, span types, agent/tool/guardrail names, model names, usage integers, ``triggered``,
whether a span has an error, and the class (and HTTP status or provider error code) of the exception
in flight. Never read: ``input``, ``output``, ``response``, ``model_config``, the error's ``data``,
exception messages, trace or span metadata.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from agenttracer.failure_codes import failure_code_for_exception
from agenttracer.integrations._common import BoundedMap, Guard, failure_type_for, guarded, missing_framework
from agenttracer.model import FailureType, StepType
from agenttracer.sdk.context import current_run, current_step
from agenttracer.sdk.tracer import AgentTracer

try:
    from agents.tracing import TracingProcessor
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise missing_framework("openai-agents", "openai-agents") from exc

# The SDK's own fixed error texts -> (error class, failure code). Compared for equality only: a text
# that is not one of these (it may be app-supplied) is never kept, and the span type decides instead.
_KNOWN_ERRORS: dict[str, tuple[str, str]] = {
    "Max turns exceeded": ("MaxTurnsExceeded", "max_iterations"),
    "Guardrail tripwire triggered": ("GuardrailTripwireTriggered", "guardrail_tripped"),
    "Tool execution cancelled": ("CancelledError", "cancelled"),
    "Invalid JSON provided": ("ModelBehaviorError", "invalid_output"),
    "Multiple handoffs requested": ("ModelBehaviorError", "invalid_output"),
    "Tool not found": ("ModelBehaviorError", "invalid_output"),
    "Custom tool not found": ("ModelBehaviorError", "invalid_output"),
    "Invalid input filter": ("UserError", "invalid_output"),
    "Invalid input filter result": ("UserError", "invalid_output"),
}
# Span type -> (step type, default error class, default failure code).
_STEPS: dict[str, tuple[str, str, str]] = {
    "agent": (StepType.OTHER.value, "AgentError", "unhandled_exception"),
    "function": (StepType.TOOL.value, "ToolError", "unhandled_exception"),
    "mcp_tools": (StepType.TOOL.value, "ToolError", "unhandled_exception"),
    "generation": (StepType.LLM.value, "ModelError", "unhandled_exception"),
    "response": (StepType.LLM.value, "ModelError", "unhandled_exception"),
    "transcription": (StepType.LLM.value, "ModelError", "unhandled_exception"),
    "speech": (StepType.LLM.value, "ModelError", "unhandled_exception"),
    "handoff": (StepType.OTHER.value, "HandoffError", "invalid_output"),
    "guardrail": (StepType.OTHER.value, "GuardrailTripwireTriggered", "guardrail_tripped"),
}
_MODEL_SPANS = frozenset({"generation", "response", "transcription", "speech"})


class _Trace:
    __slots__ = ("failure", "last_error", "named", "open", "owned", "run")

    def __init__(self, run: Any, owned: bool) -> None:
        self.run = run
        self.owned = owned
        self.named = False
        self.failure = False  # whether this processor recorded the run's failure
        self.open: set[str] = set()  # span ids of this trace still open (bounded by the span map)
        self.last_error: tuple[Any, str] | None = None  # (error step, failure code) if it ended last


class _Span:
    __slots__ = ("background", "kind", "nest", "parent_id", "step", "trace", "trace_id")

    def __init__(self, trace_id: str, trace: _Trace, kind: str, step: Any, nest: Any,
                 parent_id: str | None) -> None:
        self.trace_id = trace_id
        self.trace = trace
        self.kind = kind
        self.step = step
        self.nest = nest
        self.parent_id = parent_id
        # The exception already being handled when the span started (the agent may run inside an
        # ``except`` block): by identity only, so that it is never taken for the span's own error.
        self.background = id(sys.exc_info()[1])


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _usage(data: Any) -> dict[str, int]:
    usage = getattr(data, "usage", None)
    out: dict[str, int] = {}
    if isinstance(usage, Mapping):
        for source, key in (("input_tokens", "tokens_in"), ("output_tokens", "tokens_out")):
            value = usage.get(source)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                out[key] = value
    return out


def _classify(entry: _Span, error: Any, tripped: bool) -> tuple[str, str]:
    """(error class, failure code) of a span that ended in error or tripped."""
    if not tripped:
        in_flight = sys.exc_info()[1]
        if in_flight is not None and id(in_flight) != entry.background:
            return type(in_flight).__name__, failure_code_for_exception(in_flight)
    message = error.get("message") if isinstance(error, Mapping) else None
    known = _KNOWN_ERRORS.get(message) if isinstance(message, str) else None
    return known if known is not None else (_STEPS[entry.kind][1], _STEPS[entry.kind][2])


class AgentTracerProcessor(TracingProcessor):
    """Records OpenAI Agents SDK traces through ``tracer``; see the module docstring.

    ``max_open_spans`` bounds the spans tracked at once and ``max_open_traces`` the traces (the oldest
    is evicted, counted in ``stats()``). It never raises into the agent.
    """

    def __init__(self, tracer: AgentTracer, *, max_open_spans: int = 10_000, max_open_traces: int = 1_000) -> None:
        if not isinstance(tracer, AgentTracer):
            raise TypeError("AgentTracerProcessor needs an agenttracer.AgentTracer")
        self._tracer = tracer
        self._traces: BoundedMap[str, _Trace] = BoundedMap(max_open_traces)
        self._spans: BoundedMap[str, _Span] = BoundedMap(max_open_spans)
        self._guard = Guard("openai-agents")

    def stats(self) -> dict[str, int]:
        """What the processor gave up on, by reason, and the ``open_traces``/``open_spans`` it tracks.

        ``evicted_traces``/``evicted_spans``: pushed out by the bounds; ``unknown_trace``: spans of a trace
        it never saw start; ``unfinished``: spans still open when their trace ended (not recorded);
        ``callback_error:<callback>``: callbacks skipped because they failed.
        """
        with self._guard.lock:
            return {**self._guard.counts, "open_traces": len(self._traces), "open_spans": len(self._spans)}

    # ------------------------------------------------------------------ traces

    @guarded
    def on_trace_start(self, trace: Any) -> None:
        trace_id = _str(getattr(trace, "trace_id", None))
        if trace_id is None:
            return
        run = current_run()
        if run is not None and getattr(run, "status", None) == "running":
            state = _Trace(run, owned=False)
        else:
            meta: dict[str, Any] = {"framework": "openai-agents"}
            workflow = _str(getattr(trace, "name", None))
            if workflow is not None:
                meta["workflow"] = workflow
            state = _Trace(self._tracer.start_run(metadata=meta), owned=True)
            state.run.start(current=False)  # traces need not nest: never the context's current run
        evicted = self._traces.put(trace_id, state)
        if evicted is not None:
            self._guard.count("evicted_traces")
            self._close(evicted)

    @guarded
    def on_trace_end(self, trace: Any) -> None:
        state = self._traces.pop(_str(getattr(trace, "trace_id", None)) or "", None)
        if state is not None:
            self._close(state)

    def _close(self, state: _Trace) -> None:
        for span_id in state.open:
            if self._spans.pop(span_id, None) is not None:
                self._guard.count("unfinished")
        state.open.clear()
        if state.owned:
            state.run.end()

    # ------------------------------------------------------------------- spans

    @guarded
    def on_span_start(self, span: Any) -> None:
        span_id = _str(getattr(span, "span_id", None))
        trace_id = _str(getattr(span, "trace_id", None))
        state = self._traces.get(trace_id or "")
        if span_id is None or state is None:
            self._guard.count("unknown_trace")
            return
        parent_id = _str(getattr(span, "parent_id", None))
        parent = self._spans.get(parent_id) if parent_id is not None else None
        if parent is not None:
            nest = parent.nest
        else:
            nest = current_step() if not state.owned else None
            nest = nest if nest is not None and getattr(nest, "_run", None) is state.run else None
        data = getattr(span, "span_data", None)
        kind = _str(getattr(data, "type", None)) or "unknown"
        step = None
        spec = _STEPS.get(kind)
        if spec is not None:
            step = self._begin(state, kind, spec[0], data, nest)
        entry = _Span(trace_id or "", state, kind, step, step if step is not None else nest, parent_id)
        self._spans[span_id] = entry
        state.open.add(span_id)
        if len(self._spans) > self._spans.limit:
            evicted_id, evicted = self._spans.popitem(last=False)
            evicted.trace.open.discard(evicted_id)  # its trace stops tracking it too: memory stays bounded
            self._guard.count("evicted_spans")

    def _begin(self, state: _Trace, kind: str, step_type: str, data: Any, nest: Any) -> Any:
        meta: dict[str, Any] = {}
        if kind == "agent":
            name = _str(getattr(data, "name", None)) or "agent"
            if not state.named and state.owned:
                state.named = True
                state.run.set(agent_name=name)
        elif kind in _MODEL_SPANS:
            name = kind
        elif kind == "handoff":
            name = "handoff"
        elif kind == "mcp_tools":
            name = "mcp_list_tools"
        else:
            name = _str(getattr(data, "name", None)) or kind
        # The SDK links the step to an earlier failed attempt of the same action (agenttracer.verdict).
        return state.run.begin_step(step_type, name, metadata=meta or None, parent=nest)

    @guarded
    def on_span_end(self, span: Any) -> None:
        span_id = _str(getattr(span, "span_id", None))
        entry = self._spans.pop(span_id or "", None)
        if entry is None:
            return
        state = entry.trace
        state.open.discard(span_id or "")
        step = entry.step
        if step is None:
            return
        data = getattr(span, "span_data", None)
        kind = entry.kind
        meta = self._end_metadata(kind, data)
        if meta:
            step.set(**meta)
        error = getattr(span, "error", None)
        tripped = kind == "guardrail" and getattr(data, "triggered", False) is True
        if error is None and not tripped:
            step.end()
            state.last_error = None
            return
        error_class, code = _classify(entry, error, tripped)
        cause = state.last_error
        step.end(error_class=error_class, failure_code=code)
        state.last_error = (step, code)
        if kind == "guardrail":
            self._fail(state, FailureType.ORCHESTRATION.value, code, step)
        elif kind == "agent":
            if code != "max_iterations" and cause is not None:
                self._fail(state, failure_type_for(cause[0].step_type), cause[1], cause[0])
            else:
                self._fail(state, FailureType.ORCHESTRATION.value, code, step)

    def _end_metadata(self, kind: str, data: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if kind in _MODEL_SPANS:
            model = _str(getattr(data, "model", None))
            if model is not None:
                meta["model"] = model
            meta.update(_usage(data))
        elif kind == "handoff":
            for source in ("from_agent", "to_agent"):
                value = _str(getattr(data, source, None))
                if value is not None:
                    meta[source] = value
        elif kind == "guardrail":
            meta["triggered"] = getattr(data, "triggered", False) is True
        return meta

    @staticmethod
    def _fail(state: _Trace, failure_type: str, code: str, step: Any) -> None:
        # A run has one failure: the first fatal span decides it (an outer agent span that ends in error
        # after an inner one is the same stop, seen again).
        if state.owned and not state.failure:
            state.failure = True
            state.run.record_failure(failure_type, code, step=step)

    def shutdown(self) -> None:
        """Nothing to release: delivery belongs to the tracer (``tracer.shutdown()``)."""

    def force_flush(self) -> None:
        """Deliver what the tracer holds, waiting at most 5 s (called by the Agents SDK on demand)."""
        self._tracer.flush(5.0)
