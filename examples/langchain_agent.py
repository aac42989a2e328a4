"""A LangGraph agent traced by the LangChain callback handler, offline (a fake chat model, no API key).

Needs the extra: ``pip install 'agenttracer[langchain]' langgraph``. Start the platform (``make up``),
then from the repository root::

    PYTHONPATH=. python examples/langchain_agent.py

Each question is one run: planner node (an ``llm`` step inside) -> tools node (an order lookup that
times out once under ``.with_retry()``: two attempts, the second linked to the first) -> answer node.
The last question asks for an order the tool cannot find: that run fails as a ``tool`` failure.
The questions, model replies and tool arguments never leave the process; only step types, names,
token counts, latencies, retry links and exception class names do.
The Ingest API address comes from ``AGENTTRACER_API_URL`` (default http://localhost:8000).
"""

from __future__ import annotations

import os
from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph

from agenttracer import AgentTracer
from agenttracer.integrations.langchain import AgentTracerCallbackHandler

QUERY_URL = os.environ.get("AGENTTRACER_QUERY_URL", "http://localhost:8001")
QUESTIONS = [("Where is order A-17?", "A-17"), ("Has order B-22 shipped?", "B-22"), ("And order Z-99?", "Z-99")]


class OrderServiceTimeout(TimeoutError):
    """The order service did not answer in time (simulated)."""


class UnknownOrder(LookupError):
    """No such order (simulated)."""


calls: dict[str, int] = {}


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up in the order service."""
    calls[order_id] = calls.get(order_id, 0) + 1
    if order_id == "Z-99":
        raise UnknownOrder(f"no order {order_id}")
    if calls[order_id] == 1:  # every order's first lookup times out
        raise OrderServiceTimeout("order service timed out")
    return f"order {order_id}: shipped"


class State(TypedDict):
    question: str
    order_id: str
    status: str
    answer: str


def build(model: GenericFakeChatModel) -> Any:
    lookup = lookup_order.with_retry(stop_after_attempt=3, wait_exponential_jitter=False,
                                     retry_if_exception_type=(TimeoutError,))

    def planner(state: State) -> dict[str, Any]:
        model.invoke(state["question"])  # decides to look the order up
        return {}

    def tools(state: State) -> dict[str, Any]:
        return {"status": lookup.invoke({"order_id": state["order_id"]})}

    def answer(state: State) -> dict[str, Any]:
        return {"answer": str(model.invoke(f"Answer from: {state['status']}").content)}

    graph = StateGraph(State)
    graph.add_node("planner", planner)
    graph.add_node("tools", tools)
    graph.add_node("answer", answer)
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "tools")
    graph.add_edge("tools", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


def main() -> None:
    tracer = AgentTracer(agent_id="langgraph-orders", agent_version="v1.0.0", environment="demo", project="demo")
    handler = AgentTracerCallbackHandler(tracer)
    replies = [AIMessage(content=text, usage_metadata={"input_tokens": 40, "output_tokens": 12, "total_tokens": 52})
               for text in ["I will look the order up.", "Your order has shipped."] * len(QUESTIONS)]
    app = build(GenericFakeChatModel(messages=iter(replies)))
    for question, order_id in QUESTIONS:
        try:
            app.invoke({"question": question, "order_id": order_id, "status": "", "answer": ""},
                       config={"callbacks": [handler]})
            print(f"{order_id}: answered after {calls[order_id]} lookups")
        except UnknownOrder:
            print(f"{order_id}: failed (unknown order)")

    tracer.shutdown(timeout=5.0)
    stats = tracer.stats()
    print(f"delivered {stats.delivered} of {stats.produced} events, dropped {stats.dropped_total}")
    print("Look at the result:")
    print(f"  curl '{QUERY_URL}/v1/runs?agent_id=langgraph-orders'")
    print("  or the dashboard at http://localhost:3000")


if __name__ == "__main__":
    main()
