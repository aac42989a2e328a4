"""Real OpenTelemetry clients against a live Ingest API's /v1/traces, on SQLite, PostgreSQL and ClickHouse (chdb).

Pydantic AI (TestModel, instrumentation on, content capture ON) and LangChain (GenericFakeChatModel
and a failing tool, traced by openinference-instrumentation-langchain) export through the stock
protobuf OTLPSpanExporter in batches of two spans, so children and roots arrive in different
requests. What comes out — runs, typed steps, linked retries, classified failures, token counts —
is read back through the Query API; then the database (SQLite file and WAL, or every PostgreSQL or ClickHouse row)
and the server log are scanned for every canary that was in a prompt, output, tool argument or
result, status or exception message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from agenttracer.server.settings import Settings
from tests.server.otlp_support import assert_no_canary, provider, run_detail, runs, server_log, stored_text

CANARY = "zqcanary"  # lower case: also caught where a value was case-folded


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of tests/support/servers.py on every store."""
    return Settings(database_url=store_url)


@pytest.fixture
def log() -> Iterator[Any]:
    with server_log() as out:
        yield out


def _flush(tp: TracerProvider) -> None:
    assert tp.force_flush(30_000)
    tp.shutdown()


def test_pydantic_ai_agent_with_content_capture_on(live_ingest: str, live_query: str, store_url: str, log: Any) -> None:
    from pydantic_ai import Agent, ModelRetry
    from pydantic_ai.capabilities.instrumentation import Instrumentation
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.test import TestModel

    tp = provider(
        live_ingest,
        {"service.name": "support-svc", "service.version": "2.1.0", "deployment.environment.name": "staging"},
    )
    settings = InstrumentationSettings(tracer_provider=tp, include_content=True)
    agent = Agent(
        TestModel(),
        name="support_bot",
        system_prompt=f"{CANARY}-system be helpful",
        capabilities=[Instrumentation(settings=settings)],
    )
    calls = {"n": 0}

    @agent.tool_plain
    def lookup_order(order_ref: str) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ModelRetry(f"{CANARY}-retry the order reference looks wrong")
        return f"{CANARY}-result order shipped to jane@example.com"

    result = agent.run_sync(f"{CANARY}-prompt where is my order?")
    assert CANARY in str(result.output)

    failing = Agent(TestModel(), name="billing_bot", capabilities=[Instrumentation(settings=settings)])

    @failing.tool_plain
    def charge_card(amount: int) -> str:
        raise TimeoutError(f"{CANARY}-exc the card gateway timed out")

    with pytest.raises(TimeoutError):
        failing.run_sync(f"{CANARY}-prompt charge me")
    _flush(tp)

    (support,) = runs(live_query, agent_id="support_bot")
    assert (support["agent_version"], support["environment"], support["status"]) == ("2.1.0", "staging", "success")
    detail = run_detail(live_query, support["run_id"])
    steps = detail["steps"]
    shape = [(s["seq"], s["step_type"], s["name"], s["status"], s["attempt"], s["retry_of_seq"]) for s in steps]
    assert shape == [
        (1, "llm", "chat test", "ok", 1, None),
        (2, "tool", "lookup_order", "error", 1, None),
        (3, "llm", "chat test", "ok", 1, None),
        (4, "tool", "lookup_order", "ok", 2, 2),
        (5, "llm", "chat test", "ok", 1, None),
    ]
    assert steps[1]["failure_code"] == "invalid_output"
    assert steps[1]["error_class"] == "pydantic_ai.exceptions.ToolRetryError"
    assert all(s["parent_seq"] is None for s in steps)  # children of the agent span, which is the run
    llm = [s for s in steps if s["step_type"] == "llm"]
    assert all(s["meta"]["model"] == "test" and s["meta"]["provider"] == "test" for s in llm)
    assert all(s["meta"]["tokens_in"] > 0 and s["meta"]["tokens_out"] > 0 for s in llm)
    run = detail["run"]
    assert run["meta"]["tokens_in"] == sum(s["meta"]["tokens_in"] for s in llm)
    assert run["meta"]["tokens_out"] == sum(s["meta"]["tokens_out"] for s in llm)
    assert run["meta"]["service"] == "support-svc"
    assert (run["step_count"], run["error_step_count"], run["retry_count"]) == (5, 1, 1)
    assert detail["failure"] is None
    # Content-bearing keys were dropped and counted, never stored.
    assert run["meta_removed"] > sum(s["meta_removed"] for s in steps) > 0
    assert all(s["meta_removed"] > 0 for s in steps)

    (billing,) = runs(live_query, agent_id="billing_bot")
    assert billing["status"] == "failure"
    detail = run_detail(live_query, billing["run_id"])
    tool = next(s for s in detail["steps"] if s["step_type"] == "tool")
    assert (tool["status"], tool["error_class"], tool["failure_code"]) == ("error", "TimeoutError", "timeout")
    failure = detail["failure"]
    assert (failure["failure_type"], failure["failure_code"], failure["step_seq"]) == ("tool", "timeout", tool["seq"])
    assert failure["message"] is None

    stored = stored_text(store_url)
    assert "lookup_order" in stored and "support_bot" in stored  # the scan sees what was stored
    assert_no_canary(CANARY, stored, log.getvalue())
    assert "jane@example.com" not in stored


def test_langchain_chain_traced_by_openinference(live_ingest: str, live_query: str, store_url: str, log: Any) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import tool
    from openinference.instrumentation.langchain import LangChainInstrumentor

    tp = provider(live_ingest, {"service.name": "lc-agent", "deployment.environment": "prod"})
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=tp)
    try:
        usage = {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15}
        model = GenericFakeChatModel(
            messages=iter([AIMessage(content=f"{CANARY}-output Paris", usage_metadata=usage)] * 2)  # type: ignore[arg-type]
        )
        prompt = ChatPromptTemplate.from_messages([("system", f"{CANARY}-system"), ("human", "{question}")])

        @tool
        def fetch_weather(city: str) -> str:
            """Fetch the weather for a city."""
            raise TimeoutError(f"{CANARY}-exc weather service timed out for {city}")

        calls = {"n": 0}

        def flaky_lookup(message: Any) -> str:
            calls["n"] += 1
            if calls["n"] == 1:
                raise ConnectionError(f"{CANARY}-conn refused")
            return str(message.content)

        ok_chain = prompt | model | RunnableLambda(flaky_lookup).with_retry(stop_after_attempt=3)
        assert CANARY in ok_chain.invoke({"question": f"{CANARY}-question capital of France?"})
        bad_chain = prompt | model | RunnableLambda(lambda m: fetch_weather.invoke({"city": f"{CANARY}-arg Paris"}))
        with pytest.raises(TimeoutError):
            bad_chain.invoke({"question": f"{CANARY}-question weather?"})
    finally:
        instrumentor.uninstrument()
    _flush(tp)

    found = runs(live_query, agent_id="lc-agent")
    assert len(found) == 2 and all(r["environment"] == "prod" for r in found)
    ok = next(r for r in found if r["status"] == "success")
    bad = next(r for r in found if r["status"] == "failure")

    steps = run_detail(live_query, ok["run_id"])["steps"]
    llm = [s for s in steps if s["step_type"] == "llm"]
    assert len(llm) == 1 and llm[0]["meta"]["tokens_in"] == 11 and llm[0]["meta"]["tokens_out"] == 4
    assert llm[0]["meta"]["tokens_total"] == 15
    # with_retry is a span of its own (named like what it wraps), with one child span per attempt.
    wrapper, *lookups = [s for s in steps if s["name"] == "flaky_lookup"]
    assert wrapper["status"] == "ok" and all(s["parent_seq"] == wrapper["seq"] for s in lookups)
    assert [(s["status"], s["attempt"]) for s in lookups] == [("error", 1), ("ok", 2)]
    assert lookups[1]["retry_of_seq"] == lookups[0]["seq"]
    assert lookups[0]["error_class"] == "ConnectionError" and lookups[0]["failure_code"] == "connection_error"
    # Seqs are given on arrival (never renumbered); the run detail lists the steps in start order.
    assert sorted(s["seq"] for s in steps) == list(range(1, len(steps) + 1))
    assert [s["started_at"] for s in steps] == sorted(s["started_at"] for s in steps)

    detail = run_detail(live_query, bad["run_id"])
    tool_step = next(s for s in detail["steps"] if s["step_type"] == "tool")
    assert tool_step["name"] == "fetch_weather" and tool_step["status"] == "error"
    assert (tool_step["error_class"], tool_step["failure_code"]) == ("TimeoutError", "timeout")
    failure = detail["failure"]
    assert (failure["failure_type"], failure["failure_code"]) == ("tool", "timeout")
    assert failure["step_seq"] == tool_step["seq"]
    # The chain steps around the tool failed too, but the innermost failing step is the cause.
    assert tool_step["parent_seq"] is not None

    stored = stored_text(store_url)
    assert "fetch_weather" in stored and "lc-agent" in stored  # the scan sees what was stored
    assert_no_canary(CANARY, stored, log.getvalue())
