"""LangChain and LangGraph: ``AgentTracerCallbackHandler(tracer)``, passed as ``config={"callbacks": [handler]}``.

What becomes what:

* the outermost chain or graph invocation is a run (inside a ``with tracer.start_run()`` block the
  steps join that run instead, and the block decides its status);
* chat models and LLMs are ``llm`` steps (model name from ``ls_model_name``, token counts from
  ``usage_metadata``), tools are ``tool`` steps, retrievers ``retrieval`` steps (with the number of
  documents only), LangGraph nodes are steps named by the node (``plan`` for planning nodes, else
  ``other``; ``node_step_types`` overrides); other chains are not steps, their children nest under
  the nearest step;
* an ``on_*_error`` ends the step as an error step (exception class, failure code from the SDK's
  classifier); the exception escaping the outermost invocation becomes the run's failure, typed by the
  step it came from (tool, model, retrieval, else orchestration);
* retries are linked by the SDK's one rule (``agenttracer.verdict``): a step of the same action (type
  and name) as an earlier failed attempt in the run is its retry, whatever its parent — a LangGraph
  ``RetryPolicy`` re-running a node, the model calling a tool again after ``ToolNode`` handed it the
  error. ``RunnableRetry``'s ``retry:attempt:N`` tag states the attempt number; ``on_retry`` (a retry
  inside one component run) ends the attempt so far and begins the next.

Read: run ids, names, tags, the ``langgraph_node``/``langgraph_step`` and ``ls_model_name``/``ls_provider``
metadata keys, token integers, document counts and exception classes. Never read: prompts, messages,
inputs, outputs, documents, serialized constructor arguments, exception messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from agenttracer.failure_codes import DEFAULT_EXCEPTION_CODE, failure_code_for_exception
from agenttracer.integrations._common import BoundedMap, Guard, failure_type_for, guarded, missing_framework
from agenttracer.model import FailureType, StepType
from agenttracer.privacy.otel import retry_attempt_from_tags
from agenttracer.sdk.context import current_run, current_step
from agenttracer.sdk.tracer import AgentTracer

try:
    from langchain_core.callbacks import BaseCallbackHandler
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise missing_framework("langchain", "langchain-core") from exc

# LangGraph's interrupts and parent commands travel as exceptions; they are control flow, not errors.
_CONTROL_FLOW = frozenset({"GraphBubbleUp"})
_PLAN_NODES = frozenset({"plan", "planner", "planning", "agent", "supervisor"})
_SMALL = 64  # per-run memory of recent exceptions and failed attempts


class _Trace:
    """What one run remembers while its LangChain runs are open."""

    __slots__ = ("owned", "raised", "run")

    def __init__(self, run: Any, owned: bool) -> None:
        self.run = run
        self.owned = owned
        # id(exception) -> (class name, first step that ended with it): the most specific step an escaping
        # exception came from. Kept only while the run is open, and only the last few.
        self.raised: BoundedMap[int, tuple[str, Any]] = BoundedMap(_SMALL)


class _Open:
    """One open LangChain run: its step (None when it is not recorded as one) and where children nest."""

    __slots__ = ("kind", "meta", "name", "nest", "node", "parent_id", "step", "trace")

    def __init__(self, trace: _Trace, step: Any, nest: Any, kind: str, name: str, parent_id: UUID | None,
                 node: str | None, meta: Mapping[str, Any] | None = None) -> None:
        self.trace = trace
        self.step = step
        self.nest = nest  # the step that children of this run get as their parent
        self.kind = kind
        self.name = name
        self.parent_id = parent_id
        self.node = node
        self.meta = meta  # the step's start metadata, which an attempt begun by on_retry repeats


def _name(serialized: Any, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, Mapping):
        name = serialized.get("name")
        if isinstance(name, str) and name:
            return name
        ids = serialized.get("id")
        if isinstance(ids, list) and ids and isinstance(ids[-1], str):
            return ids[-1]
    return default


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _token_counts(response: Any) -> tuple[int, int]:
    """Input and output tokens of an ``LLMResult``, from the messages' ``usage_metadata`` only."""
    tokens_in = tokens_out = 0
    for generations in getattr(response, "generations", None) or ():
        for generation in generations or ():
            usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
            if isinstance(usage, Mapping):
                tokens_in += _int(usage.get("input_tokens")) or 0
                tokens_out += _int(usage.get("output_tokens")) or 0
    if not (tokens_in or tokens_out):
        output = getattr(response, "llm_output", None)
        usage = output.get("token_usage") if isinstance(output, Mapping) else None
        if isinstance(usage, Mapping):
            tokens_in = _int(usage.get("prompt_tokens")) or 0
            tokens_out = _int(usage.get("completion_tokens")) or 0
    return tokens_in, tokens_out


def _is_control_flow(exc: BaseException) -> bool:
    return any(cls.__name__ in _CONTROL_FLOW for cls in type(exc).__mro__)


class AgentTracerCallbackHandler(BaseCallbackHandler):
    """Records LangChain/LangGraph runs through ``tracer``; see the module docstring.

    ``max_open_runs`` bounds the LangChain runs tracked at once (the oldest is evicted, counted in
    ``stats()``); ``node_step_types`` maps LangGraph node names to step types. It never raises into the
    agent: a callback that fails is skipped and counted.
    """

    raise_error = False
    # Our callbacks only append to the SDK's queue: run them inline, in order, even under asyncio.
    run_inline = True

    def __init__(self, tracer: AgentTracer, *, max_open_runs: int = 10_000,
                 node_step_types: Mapping[str, str] | None = None) -> None:
        super().__init__()
        if not isinstance(tracer, AgentTracer):
            raise TypeError("AgentTracerCallbackHandler needs an agenttracer.AgentTracer")
        self._tracer = tracer
        self._open: BoundedMap[UUID, _Open] = BoundedMap(max_open_runs)
        # Ids evicted from ``_open`` (and their descendants): their callbacks are dropped, counted, rather
        # than each starting a run of its own.
        self._evicted: BoundedMap[UUID, None] = BoundedMap(max_open_runs)
        self._node_types = dict(node_step_types or {})
        self._guard = Guard("langchain")

    def stats(self) -> dict[str, int]:
        """What the handler gave up on, by reason, and how many LangChain runs are ``open``.

        ``evicted``: open runs pushed out by ``max_open_runs``; ``orphaned``: callbacks of their descendants,
        dropped; ``callback_error:<callback>``: callbacks skipped because they failed.
        """
        with self._guard.lock:
            return {**self._guard.counts, "open": len(self._open)}

    # ------------------------------------------------------------ bookkeeping

    def _track(self, run_id: UUID, entry: _Open) -> None:
        self._open[run_id] = entry
        if len(self._open) > self._open.limit:
            evicted_id, evicted = self._open.popitem(last=False)
            self._evicted.put(evicted_id, None)
            self._guard.count("evicted")
            if evicted.parent_id is None and evicted.trace.owned:
                # A run whose outermost invocation never ended: close it rather than keep it forever.
                evicted.trace.run.mark_partial()
                evicted.trace.run.end()

    def _root(self, name: str) -> _Trace:
        run = current_run()
        if run is not None and getattr(run, "status", None) == "running":
            return _Trace(run, owned=False)
        run = self._tracer.start_run(metadata={"framework": "langchain", "entrypoint": name})
        run.start(current=False)  # invocations (streams, say) need not nest: never the current run
        return _Trace(run, owned=True)

    def _start(self, kind: str, step_type: str | None, name: str, run_id: UUID, parent_run_id: UUID | None,
               tags: Sequence[str] | None, metadata: Mapping[str, Any] | None = None,
               step_meta: Mapping[str, Any] | None = None, node: str | None = None) -> None:
        parent = self._open.get(parent_run_id) if parent_run_id is not None else None
        if parent is None and parent_run_id is not None and parent_run_id in self._evicted:
            self._evicted.put(run_id, None)
            self._guard.count("orphaned")
            return
        if parent is None:
            trace = self._root(name)
            nest = current_step() if not trace.owned else None
            nest = nest if nest is not None and getattr(nest, "_run", None) is trace.run else None
            if kind == "chain":  # the outermost invocation is the run itself, not a step
                self._track(run_id, _Open(trace, None, nest, kind, name, None, None))
                return
            parent_id = None
        else:
            trace, nest, parent_id = parent.trace, parent.nest, parent_run_id
        if step_type is None:  # a chain that is not a step: its children nest under ``nest``
            self._track(run_id, _Open(trace, None, nest, kind, name, parent_id, node))
            return
        # The SDK links the step to an earlier failed attempt of the same action (agenttracer.verdict).
        step = trace.run.begin_step(step_type, name, metadata=step_meta, parent=nest,
                                    attempt=retry_attempt_from_tags(tags))
        self._track(run_id, _Open(trace, step, step, kind, name, parent_id, node, step_meta))

    def _end(self, run_id: UUID, error: BaseException | None = None) -> _Open | None:
        entry = self._open.pop(run_id, None)
        if entry is None:
            self._evicted.pop(run_id, None)
            return None
        trace = entry.trace
        if error is not None and _is_control_flow(error):
            error = None
        if entry.step is not None:
            entry.step.end(error)
        if error is not None:
            key = id(error)
            known = trace.raised.get(key)
            if (known is None or known[0] != type(error).__name__) and entry.step is not None:
                trace.raised.put(key, (type(error).__name__, entry.step))
        if entry.parent_id is None and trace.owned:
            self._end_run(trace, error)
        return entry

    def _end_run(self, trace: _Trace, error: BaseException | None) -> None:
        run = trace.run
        if error is not None:
            known = trace.raised.get(id(error))
            code = failure_code_for_exception(error)
            if known is not None and known[0] == type(error).__name__:
                step = known[1]
                run.record_failure(failure_type_for(step.step_type), code, step=step)
            elif code != DEFAULT_EXCEPTION_CODE:
                run.record_failure(FailureType.ORCHESTRATION, code)
        run.end(error)

    # ----------------------------------------------------------------- chains

    @guarded
    def on_chain_start(self, serialized: dict[str, Any], inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, tags: list[str] | None = None,
                       metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        name = _name(serialized, kwargs, "chain")
        node = metadata.get("langgraph_node") if isinstance(metadata, Mapping) else None
        parent = self._open.get(parent_run_id) if parent_run_id is not None else None
        is_node = (isinstance(node, str) and node == name and parent is not None
                   and parent.node != node)
        if not is_node:
            self._start("chain", None, name, run_id, parent_run_id, tags,
                        node=node if isinstance(node, str) else None)
            return
        assert isinstance(metadata, Mapping)
        graph_step = _int(metadata.get("langgraph_step"))
        step_type = self._node_types.get(name) or (StepType.PLAN.value if name.lower() in _PLAN_NODES
                                                   else StepType.OTHER.value)
        self._start("chain", step_type, name, run_id, parent_run_id, tags,
                    step_meta={"graph_step": graph_step} if graph_step is not None else None, node=node)

    @guarded
    def on_chain_end(self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                     **kwargs: Any) -> None:
        self._end(run_id)

    @guarded
    def on_chain_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                       **kwargs: Any) -> None:
        self._end(run_id, error)

    # ------------------------------------------------------------------ models

    def _model_start(self, serialized: Any, run_id: UUID, parent_run_id: UUID | None, tags: Any,
                     metadata: Any, kwargs: Mapping[str, Any]) -> None:
        meta: dict[str, Any] = {}
        if isinstance(metadata, Mapping):
            for source, key in (("ls_model_name", "model"), ("ls_provider", "provider")):
                value = metadata.get(source)
                if isinstance(value, str) and value:
                    meta[key] = value
        self._start("llm", StepType.LLM.value, _name(serialized, kwargs, "llm"), run_id, parent_run_id, tags,
                    step_meta=meta or None)

    @guarded
    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, *, run_id: UUID,
                            parent_run_id: UUID | None = None, tags: list[str] | None = None,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._model_start(serialized, run_id, parent_run_id, tags, metadata, kwargs)

    @guarded
    def on_llm_start(self, serialized: dict[str, Any], prompts: Any, *, run_id: UUID,
                     parent_run_id: UUID | None = None, tags: list[str] | None = None,
                     metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._model_start(serialized, run_id, parent_run_id, tags, metadata, kwargs)

    @guarded
    def on_llm_end(self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                   **kwargs: Any) -> None:
        entry = self._open.get(run_id)
        if entry is not None and entry.step is not None:
            tokens_in, tokens_out = _token_counts(response)
            if tokens_in or tokens_out:
                entry.step.set(tokens_in=tokens_in, tokens_out=tokens_out)
        self._end(run_id)

    @guarded
    def on_llm_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                     **kwargs: Any) -> None:
        self._end(run_id, error)

    # ------------------------------------------------------------ tools, retrievers

    @guarded
    def on_tool_start(self, serialized: dict[str, Any], input_str: Any, *, run_id: UUID,
                      parent_run_id: UUID | None = None, tags: list[str] | None = None,
                      metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start("tool", StepType.TOOL.value, _name(serialized, kwargs, "tool"), run_id, parent_run_id, tags)

    @guarded
    def on_tool_end(self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._end(run_id)

    @guarded
    def on_tool_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                      **kwargs: Any) -> None:
        self._end(run_id, error)

    @guarded
    def on_retriever_start(self, serialized: dict[str, Any], query: Any, *, run_id: UUID,
                           parent_run_id: UUID | None = None, tags: list[str] | None = None,
                           metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start("retriever", StepType.RETRIEVAL.value, _name(serialized, kwargs, "retriever"), run_id,
                    parent_run_id, tags)

    @guarded
    def on_retriever_end(self, documents: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                         **kwargs: Any) -> None:
        entry = self._open.get(run_id)
        if entry is not None and entry.step is not None and isinstance(documents, Sequence):
            entry.step.set(result_count=len(documents))  # how many, never which
        self._end(run_id)

    @guarded
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None,
                           **kwargs: Any) -> None:
        self._end(run_id, error)

    # ------------------------------------------------------------------ retries

    @guarded
    def on_retry(self, retry_state: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                 **kwargs: Any) -> None:
        """A component retried inside one LangChain run: its attempt so far ends in error, a linked one begins."""
        entry = self._open.get(run_id)
        if entry is None or entry.step is None:
            return
        outcome = getattr(retry_state, "outcome", None)
        failed = outcome.exception() if outcome is not None and getattr(outcome, "failed", False) else None
        step = entry.step
        if isinstance(failed, BaseException):
            step.end(failed)
        else:
            step.end(error_class="RetryError")
        retry = entry.trace.run.begin_step(step.step_type, step.name, metadata=entry.meta, retry_of=step,
                                           parent=step.parent_seq)
        entry.step = entry.nest = retry
