"""The LangGraph agent both LangGraph recordings run: ``create_react_agent`` over ``ChatOpenAI`` (pointed
at the fake model, no client retries) with ``ToolNode([lookup_order], handle_tool_errors=True)``, so a
tool's error goes back to the model, which may call the tool again."""

from __future__ import annotations

from typing import Any

from tests.conformance.record.context import Context
from tests.conformance.record.scenarios import LookupOrder, prompt, system_prompt


def run_agent(ctx: Context, config: dict[str, Any] | None = None) -> Any:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import ToolNode, create_react_agent

    body = LookupOrder(ctx.scenario)

    @tool
    def lookup_order(order_id: str) -> str:
        """Look up the shipping state of an order."""
        return body(order_id)

    model = ChatOpenAI(model="gpt-4o-mini", base_url=ctx.model_url, api_key="sk-fake-offline", max_retries=0)
    graph = create_react_agent(model, ToolNode([lookup_order], handle_tool_errors=True), prompt=system_prompt(),
                               name="support_bot")
    return graph.invoke({"messages": [("user", prompt())]}, config=config)
