"""A customer-support agent that succeeds, sometimes only after retrying a flaky tool.

Start the platform (``make up``), then from the repository root::

    PYTHONPATH=. python examples/customer_support_agent.py

Each ticket is one run: plan -> knowledge-base search -> billing API (retried on timeouts, every attempt
its own step linked to the one it retries) -> draft with the model -> respond. Nothing here sends a
prompt, a ticket text or a model answer: only step types, names, latencies and safe counts.
The Ingest API address comes from ``AGENTTRACER_API_URL`` (default http://localhost:8000).
"""

from __future__ import annotations

import os
import random
import time

from sdk.agenttrace import AgentTracer

# Where the printed hints point: the Query API the CLI uses too.
QUERY_URL = os.environ.get("AGENTTRACER_QUERY_URL", "http://localhost:8001")

TICKETS = [("T-1001", "billing"), ("T-1002", "shipping"), ("T-1003", "billing"), ("T-1004", "refund")]
rng = random.Random(7)


class BillingTimeout(TimeoutError):
    """The billing service did not answer in time (simulated)."""


def search_knowledge_base(topic: str) -> list[str]:
    time.sleep(0.005)
    return [f"{topic}-article-{i}" for i in range(rng.randint(1, 4))]


def call_billing_api(ticket_id: str, attempt: int) -> dict[str, int]:
    time.sleep(0.01)
    if ticket_id in ("T-1001", "T-1003") and attempt == 1:  # the first call of these tickets times out
        raise BillingTimeout()
    return {"open_invoices": rng.randint(0, 3)}


def draft_reply(articles: list[str]) -> int:
    time.sleep(0.02)
    return 120 + 40 * len(articles)  # tokens out, a number, never the text


def main() -> None:
    tracer = AgentTracer(agent_id="support-agent", agent_version="v1.2.0", environment="demo", project="demo")
    run_ids = []
    for ticket_id, topic in TICKETS:
        with tracer.start_run(metadata={"ticket_topic": topic}) as run:
            with run.step("plan", "classify_ticket") as step:
                step.set(route=topic)
            with run.step("retrieval", "kb_search") as step:
                articles = search_knowledge_base(topic)
                step.set(result_count=len(articles))
            attempt_no = 0
            for attempt in run.retrying("tool", "billing_api", attempts=3, retry_on=TimeoutError, backoff=0.01):
                with attempt as step:
                    attempt_no += 1
                    account = call_billing_api(ticket_id, attempt_no)
                    step.set(http_status=200, open_invoices=account["open_invoices"])
            with run.step("llm", "draft_reply") as step:
                step.set(model="demo-model-small", tokens_in=850, tokens_out=draft_reply(articles))
            with run.step("respond", "send_reply"):
                pass
        run_ids.append(run.run_id)
        print(f"run {run.run_id}  ticket {ticket_id}  status {run.status}  billing attempts {attempt_no}")

    tracer.shutdown(timeout=5.0)
    stats = tracer.stats()
    print(f"delivered {stats.delivered} of {stats.produced} events, dropped {stats.dropped_total}")
    print("Look at the result:")
    print(f"  curl {QUERY_URL}/v1/runs/{run_ids[0]}")
    print(f"  curl '{QUERY_URL}/v1/runs?agent_id=support-agent'")
    print("  or the dashboard at http://localhost:3000")


if __name__ == "__main__":
    main()
