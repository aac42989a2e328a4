"""An asyncio agent: parallel tool calls, nested steps, an async retry loop and the @traced decorator.

Start the platform (``make up``), then from the repository root::

    PYTHONPATH=. python examples/async_agent.py

Steps started in ``asyncio.gather`` children get the enclosing step as their parent, each with its own
seq. The Ingest API address comes from ``AGENTTRACER_API_URL`` (default http://localhost:8000).
"""

from __future__ import annotations

import asyncio
import os

from agenttracer import traced
from sdk.agenttrace import AgentTracer

# Where the printed hints point: the Query API the CLI uses too.
QUERY_URL = os.environ.get("AGENTTRACER_QUERY_URL", "http://localhost:8001")

tracer = AgentTracer(agent_id="research-agent", agent_version="v2.0.0", environment="demo", project="demo")
_calls = {"flaky_search": 0}


@traced("tool", "weather_api")
async def weather(city: str) -> int:
    await asyncio.sleep(0.02)
    return 18


@traced("tool", "calendar_api")
async def calendar(day: str) -> int:
    await asyncio.sleep(0.03)
    return 2


async def flaky_search() -> int:
    await asyncio.sleep(0.01)
    _calls["flaky_search"] += 1
    if _calls["flaky_search"] == 1:
        raise ConnectionError("simulated reset")
    return 5


async def main() -> None:
    async with tracer.start_run(metadata={"channel": "api"}) as run:
        async with run.step("plan", "split_question"):
            await asyncio.sleep(0.005)
        async with run.step("tool", "gather_context"):
            await asyncio.gather(weather("Lisbon"), calendar("2026-11-26"))
        async for attempt in run.retrying("retrieval", "web_search", attempts=3, retry_on=ConnectionError,
                                          backoff=0.01):
            async with attempt as step:
                step.set(result_count=await flaky_search())
        async with run.step("llm", "compose_answer") as step:
            step.set(tokens_in=600, tokens_out=180)
    print(f"run {run.run_id}  status {run.status}")
    tracer.shutdown(timeout=5.0)
    stats = tracer.stats()
    print(f"delivered {stats.delivered} of {stats.produced} events, dropped {stats.dropped_total}")
    print(f"Look at the result: curl {QUERY_URL}/v1/runs/{run.run_id}")


if __name__ == "__main__":
    asyncio.run(main())
