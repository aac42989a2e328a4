"""The LangChain/LangGraph callback handler with the real frameworks, offline, against a real Ingest API.

Runs on SQLite and PostgreSQL (``db_url`` through ``backend``); every test checks what the Query API
returns for the run, and that none of the canaries reached the requests, the database or the logs.
"""

from __future__ import annotations

import asyncio
import operator
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode, create_react_agent
from langgraph.types import RetryPolicy

from agenttracer import AgentTracer
from agenttracer.integrations.langchain import AgentTracerCallbackHandler
from tests.integrations.conftest import (
    CANARIES,
    FlakyLookup,
    LogCapture,
    assert_no_canaries,
    delivered,
    only_run,
    shape,
)
from tests.support.capture import Captured

USAGE = {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18}


def fake_model(*replies: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=r, usage_metadata=USAGE) for r in replies]))


class KnowledgeBase(BaseRetriever):
    """A retriever whose documents are canaries."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(page_content=CANARIES["document"]), Document(page_content=CANARIES["document"] + "2")]


@pytest.fixture
def handler(tracer: AgentTracer) -> Iterator[AgentTracerCallbackHandler]:
    made = AgentTracerCallbackHandler(tracer)
    yield made
    assert made.stats() == {"open": 0}, made.stats()


def test_a_chain_records_llm_retrieval_and_a_linked_retry_and_sends_no_content(
        handler: AgentTracerCallbackHandler, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    flaky = FlakyLookup()

    @tool
    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        return flaky(order_id)

    prompt = ChatPromptTemplate.from_messages([("system", CANARIES["system"]), ("human", "{question}")])
    retrieve = RunnableLambda(lambda q: {"question": q, "docs": KnowledgeBase().invoke(q)}, name="gather")
    chain = (retrieve | RunnableLambda(lambda d: {"question": d["question"] + CANARIES["prompt"]})
             | prompt | fake_model(CANARIES["output"])
             | RunnableLambda(lambda m: {"order_id": CANARIES["tool_args"]})
             | lookup_order.with_retry(stop_after_attempt=3, wait_exponential_jitter=False,
                                       retry_if_exception_type=(TimeoutError,)))
    result = chain.invoke(CANARIES["input"], config={"callbacks": [handler]})
    assert result == CANARIES["tool_output"] and flaky.calls == 2
    delivered(tracer)

    detail = only_run(live_query)
    assert detail["run"]["status"] == "success"  # the retry recovered the timed-out attempt
    assert detail["failure"] is None
    assert shape(detail) == [
        (1, "retrieval", "KnowledgeBase", "ok", 1, None, None),
        (2, "llm", "GenericFakeChatModel", "ok", 1, None, None),
        (3, "tool", "lookup_order", "error", 1, None, None),
        (4, "tool", "lookup_order", "ok", 2, 3, None),
    ]
    steps = detail["steps"]
    assert steps[0]["meta"] == {"result_count": 2}
    assert steps[1]["meta"] == {"provider": "genericfakechatmodel", "tokens_in": 11, "tokens_out": 7}
    assert (steps[2]["error_class"], steps[2]["failure_code"]) == ("TimeoutError", "timeout")
    assert detail["run"]["meta"]["framework"] == "langchain"
    assert_no_canaries(captured_ingest, db_url, logs)


def test_an_escaping_tool_error_is_the_runs_tool_failure_and_propagates_unchanged(
        handler: AgentTracerCallbackHandler, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    raised = ConnectionError(CANARIES["exception"])

    @tool
    def billing_api(account: str) -> str:
        """Call billing."""
        raise raised

    chain = fake_model(CANARIES["output"]) | RunnableLambda(lambda m: {"account": CANARIES["tool_args"]}) \
        | billing_api
    with pytest.raises(ConnectionError) as info:
        chain.invoke(CANARIES["prompt"], config={"callbacks": [handler]})
    assert info.value is raised
    delivered(tracer)

    detail = only_run(live_query)
    assert detail["run"]["status"] == "failure"
    assert [(s["step_type"], s["status"], s.get("error_class"), s.get("failure_code")) for s in detail["steps"]] == [
        ("llm", "ok", None, None), ("tool", "error", "ConnectionError", "connection_error")]
    failure = detail["failure"]
    assert (failure["failure_type"], failure["failure_code"], failure["step_seq"]) == ("tool", "connection_error", 2)
    assert_no_canaries(captured_ingest, db_url, logs)


class State(TypedDict):
    question: str
    notes: Annotated[list[str], operator.add]
    rounds: int


def build_graph(model: GenericFakeChatModel, search: Any) -> Any:
    def planner(state: State) -> dict[str, Any]:
        reply = model.invoke(state["question"])
        return {"notes": [str(reply.content)], "rounds": state["rounds"] + 1}

    def tools(state: State) -> dict[str, Any]:
        return {"notes": [search.invoke({"topic": CANARIES["tool_args"]})]}

    def respond(state: State) -> dict[str, Any]:
        return {"notes": [CANARIES["output"]]}

    graph = StateGraph(State)
    graph.add_node("planner", planner)
    graph.add_node("tools", tools)
    graph.add_node("respond", respond)
    graph.add_edge(START, "planner")
    graph.add_conditional_edges("planner", lambda s: "tools" if s["rounds"] < 2 else "respond", ["tools", "respond"])
    graph.add_edge("tools", "planner")
    graph.add_edge("respond", END)
    return graph.compile()


@tool
def web_search(topic: str) -> str:
    """Search the web."""
    return CANARIES["tool_output"]


def test_a_langgraph_graph_records_one_step_per_node_with_its_children_nested(
        handler: AgentTracerCallbackHandler, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    app = build_graph(fake_model(CANARIES["output"], CANARIES["output"]), web_search)
    state = app.invoke({"question": CANARIES["prompt"], "notes": [], "rounds": 0}, config={"callbacks": [handler]})
    assert state["rounds"] == 2
    delivered(tracer)

    detail = only_run(live_query)
    assert detail["run"]["status"] == "success"
    assert shape(detail) == [
        (1, "plan", "planner", "ok", 1, None, None),
        (2, "llm", "GenericFakeChatModel", "ok", 1, None, 1),
        (3, "other", "tools", "ok", 1, None, None),
        (4, "tool", "web_search", "ok", 1, None, 3),
        (5, "plan", "planner", "ok", 1, None, None),
        (6, "llm", "GenericFakeChatModel", "ok", 1, None, 5),
        (7, "other", "respond", "ok", 1, None, None),
    ]
    assert [s["meta"].get("graph_step") for s in detail["steps"] if s["step_type"] in ("plan", "other")] == [
        1, 2, 3, 4]
    assert detail["run"]["meta"]["entrypoint"] == "LangGraph"
    assert_no_canaries(captured_ingest, db_url, logs)


def test_a_graph_that_loops_past_its_recursion_limit_fails_as_max_iterations(
        handler: AgentTracerCallbackHandler, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    graph = StateGraph(State)
    graph.add_node("planner", lambda s: {"rounds": s["rounds"] + 1, "notes": [CANARIES["output"]]})
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "planner")
    app = graph.compile()
    with pytest.raises(GraphRecursionError):
        app.invoke({"question": CANARIES["prompt"], "notes": [], "rounds": 0},
                   config={"callbacks": [handler], "recursion_limit": 3})
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "failure"
    assert [s["name"] for s in detail["steps"]] == ["planner"] * 3
    failure = detail["failure"]
    assert (failure["failure_type"], failure["failure_code"]) == ("orchestration", "max_iterations")
    assert_no_canaries(captured_ingest, db_url, logs)


def test_async_invocations_and_a_failing_node_inside_a_user_run(
        handler: AgentTracerCallbackHandler, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    @tool
    def broken_search(topic: str) -> str:
        """Search, badly."""
        raise LookupError(CANARIES["exception"])

    app = build_graph(fake_model(CANARIES["output"], CANARIES["output"]), broken_search)

    async def main() -> str:
        # Inside the user's own run the handler adds steps to it; the user's block decides the status.
        with tracer.start_run() as run:
            with run.step("plan", "prepare"):
                pass
            with pytest.raises(LookupError):
                await app.ainvoke({"question": CANARIES["prompt"], "notes": [], "rounds": 0},
                                  config={"callbacks": [handler]})
            run.record_failure("tool", "not_found")
            return str(run.run_id)

    run_id = asyncio.run(main())
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["run_id"] == run_id
    assert [(s["step_type"], s["name"], s["status"], s.get("failure_code")) for s in detail["steps"]] == [
        ("plan", "prepare", "ok", None), ("plan", "planner", "ok", None), ("llm", "GenericFakeChatModel", "ok", None),
        ("other", "tools", "error", "not_found"), ("tool", "broken_search", "error", "not_found")]
    assert detail["failure"]["step_seq"] == 4  # the SDK's rule: the most recent error step (the node ended last)
    assert_no_canaries(captured_ingest, db_url, logs)


def test_open_runs_are_bounded_evicted_runs_end_partial_and_nothing_raises(tracer: AgentTracer,
                                                                          captured_ingest: Captured,
                                                                          live_query: str) -> None:
    handler = AgentTracerCallbackHandler(tracer, max_open_runs=3)
    root = uuid.uuid4()
    handler.on_chain_start({}, CANARIES["input"], run_id=root, name="outer")
    children = [uuid.uuid4() for _ in range(5)]
    for child in children:  # tools that never end: a framework bug or a lost callback
        handler.on_tool_start({"name": "stuck"}, CANARIES["tool_args"], run_id=child, parent_run_id=root)
    # The root was evicted (its run closed); the children opened under it after that are orphans.
    assert handler.stats() == {"evicted": 1, "orphaned": 2, "open": 3}
    # Odd and hostile callback arguments are tolerated or skipped and counted, never raised.
    model_run = uuid.uuid4()
    handler.on_chat_model_start(None, None, run_id=model_run, parent_run_id=children[2],
                                metadata="not-a-mapping")  # evicts one more
    handler.on_llm_end(object(), run_id=model_run)
    handler.on_retriever_end(None, run_id=uuid.uuid4())
    handler.on_chain_end(None, run_id=uuid.uuid4())

    class Hostile:
        @property
        def generations(self) -> Any:
            raise RuntimeError(CANARIES["exception"])

    handler.on_llm_end(Hostile(), run_id=children[2])
    assert handler.stats() == {"evicted": 2, "orphaned": 2, "open": 2, "callback_error:on_llm_end": 1}
    delivered(tracer)
    runs = only_run(live_query)
    # The evicted root's run was closed as partial rather than left running forever.
    assert runs["run"]["status"] == "partial"



@pytest.mark.parametrize("mode", ["threads", "asyncio"])
def test_parallel_graph_branches_nest_under_their_own_nodes(
        mode: str, handler: AgentTracerCallbackHandler, tracer: AgentTracer, captured_ingest: Captured,
        live_query: str, db_url: str, logs: LogCapture) -> None:
    @tool
    def search_a(topic: str) -> str:
        """Search source A."""
        return CANARIES["tool_output"]

    @tool
    def search_b(topic: str) -> str:
        """Search source B."""
        return CANARIES["tool_output"]

    def branch(search: Any) -> Any:
        async def async_node(state: State) -> dict[str, Any]:
            await asyncio.sleep(0.01)  # both branches are in flight at once
            return {"notes": [await search.ainvoke({"topic": CANARIES["tool_args"]})]}

        def sync_node(state: State) -> dict[str, Any]:
            time.sleep(0.01)  # LangGraph runs the two branches in two threads
            return {"notes": [search.invoke({"topic": CANARIES["tool_args"]})]}

        return async_node if mode == "asyncio" else sync_node

    graph = StateGraph(State)
    graph.add_node("source_a", branch(search_a))
    graph.add_node("source_b", branch(search_b))
    graph.add_edge(START, "source_a")
    graph.add_edge(START, "source_b")
    graph.add_edge("source_a", END)
    graph.add_edge("source_b", END)
    app = graph.compile()
    state = {"question": CANARIES["prompt"], "notes": [], "rounds": 0}
    if mode == "asyncio":
        asyncio.run(app.ainvoke(state, config={"callbacks": [handler]}))
    else:
        app.invoke(state, config={"callbacks": [handler]})
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "success"
    by_name = {s["name"]: s for s in detail["steps"]}
    assert set(by_name) == {"source_a", "source_b", "search_a", "search_b"}
    assert by_name["search_a"]["parent_seq"] == by_name["source_a"]["seq"]
    assert by_name["search_b"]["parent_seq"] == by_name["source_b"]["seq"]
    assert by_name["source_a"]["meta"]["graph_step"] == by_name["source_b"]["meta"]["graph_step"] == 1
    assert_no_canaries(captured_ingest, db_url, logs)


class RetryingModel(GenericFakeChatModel):
    """A chat model that retries its provider call inside one LangChain run and reports each retry with
    ``run_manager.on_retry`` (as provider integrations built on tenacity do)."""

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        import tenacity

        attempts = {"n": 0}

        def provider_call() -> Any:
            attempts["n"] += 1
            if attempts["n"] < 3:
                raise ConnectionError(CANARIES["exception"])
            return GenericFakeChatModel._generate(self, messages, stop=stop, run_manager=run_manager, **kwargs)

        retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(3), reraise=True,
                                     retry=tenacity.retry_if_exception_type(ConnectionError),
                                     before_sleep=lambda state: run_manager.on_retry(state))
        return retrying(provider_call)


def test_on_retry_inside_one_model_call_becomes_linked_attempts(
        handler: AgentTracerCallbackHandler, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    model = RetryingModel(messages=iter([AIMessage(content=CANARIES["output"], usage_metadata=USAGE)]))
    chain = RunnableLambda(lambda q: q + CANARIES["prompt"]) | model
    chain.invoke(CANARIES["input"], config={"callbacks": [handler]})
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "success"
    assert [(s["seq"], s["status"], s.get("error_class"), s.get("failure_code"), s["attempt"], s["retry_of_seq"])
            for s in detail["steps"]] == [
        (1, "error", "ConnectionError", "connection_error", 1, None),
        (2, "error", "ConnectionError", "connection_error", 2, 1),
        (3, "ok", None, None, 3, 2),
    ]
    assert [s["meta"] for s in detail["steps"]] == [  # every attempt names the provider; the one that
        {"provider": "retryingmodel"}, {"provider": "retryingmodel"},  # answered has the usage
        {"provider": "retryingmodel", "tokens_in": 11, "tokens_out": 7}]
    assert_no_canaries(captured_ingest, db_url, logs)


def test_a_node_retried_by_its_retry_policy_is_linked_and_the_run_succeeds(
        handler: AgentTracerCallbackHandler, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    flaky = FlakyLookup()

    def fetch(state: State) -> dict[str, Any]:
        return {"notes": [flaky(CANARIES["tool_args"])]}

    graph = StateGraph(State)
    graph.add_node("fetch", fetch, retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.001, jitter=False,
                                                             retry_on=TimeoutError))
    graph.add_edge(START, "fetch")
    graph.add_edge("fetch", END)
    state = graph.compile().invoke({"question": CANARIES["prompt"], "notes": [], "rounds": 0},
                                   config={"callbacks": [handler]})
    assert state["notes"] == [CANARIES["tool_output"]] and flaky.calls == 2
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "success" and detail["failure"] is None
    assert shape(detail) == [
        (1, "other", "fetch", "error", 1, None, None),
        (2, "other", "fetch", "ok", 2, 1, None),
    ]
    assert (detail["steps"][0]["error_class"], detail["steps"][0]["failure_code"]) == ("TimeoutError", "timeout")
    assert_no_canaries(captured_ingest, db_url, logs)


class ToolCallingModel(GenericFakeChatModel):
    """A fake chat model for agents: ``bind_tools`` is accepted and ignored; replies are scripted."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def _calls(tool_name: str, call_id: str) -> AIMessage:
    return AIMessage(content="", usage_metadata=USAGE,
                     tool_calls=[{"name": tool_name, "args": {"order_id": CANARIES["tool_args"]}, "id": call_id}])


# LangGraph 1.x points create_react_agent's users at langchain.agents.create_agent (the separate
# `langchain` package); the prebuilt agent still ships and still runs this loop.
REACT_AGENT_MOVED = pytest.mark.filterwarnings("ignore:create_react_agent has been moved")


@REACT_AGENT_MOVED
def test_a_react_agent_that_re_calls_a_failed_tool_succeeds_with_the_retry_linked(
        handler: AgentTracerCallbackHandler, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    flaky = FlakyLookup()

    @tool
    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        return flaky(order_id)

    model = ToolCallingModel(messages=iter([
        _calls("lookup_order", "call-1"),  # the tool times out; ToolNode hands the error back to the model
        _calls("lookup_order", "call-2"),  # the model calls it again in its next turn
        AIMessage(content=CANARIES["output"], usage_metadata=USAGE),
    ]))
    agent = create_react_agent(model, ToolNode([lookup_order], handle_tool_errors=True))
    result = agent.invoke({"messages": [("user", CANARIES["prompt"])]}, config={"callbacks": [handler]})
    assert result["messages"][-1].content == CANARIES["output"] and flaky.calls == 2
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "success" and detail["failure"] is None
    tools = [s for s in detail["steps"] if s["step_type"] == "tool"]
    assert [(s["status"], s["attempt"], s["retry_of_seq"], s.get("failure_code")) for s in tools] == [
        ("error", 1, None, "timeout"), ("ok", 2, tools[0]["seq"], None)]
    assert_no_canaries(captured_ingest, db_url, logs)


@REACT_AGENT_MOVED
def test_a_react_agent_that_answers_past_a_tool_that_always_fails_is_partial(
        handler: AgentTracerCallbackHandler, tracer: AgentTracer, captured_ingest: Captured, live_query: str,
        db_url: str, logs: LogCapture) -> None:
    @tool
    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        raise ConnectionError(CANARIES["exception"])

    model = ToolCallingModel(messages=iter([
        _calls("lookup_order", "call-1"), AIMessage(content=CANARIES["output"], usage_metadata=USAGE)]))
    agent = create_react_agent(model, ToolNode([lookup_order], handle_tool_errors=True))
    agent.invoke({"messages": [("user", CANARIES["prompt"])]}, config={"callbacks": [handler]})
    delivered(tracer)
    detail = only_run(live_query)
    assert detail["run"]["status"] == "partial" and detail["failure"] is None
    tools = [s for s in detail["steps"] if s["step_type"] == "tool"]
    assert [(s["status"], s.get("failure_code")) for s in tools] == [("error", "connection_error")]
    assert_no_canaries(captured_ingest, db_url, logs)
