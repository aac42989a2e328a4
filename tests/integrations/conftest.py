"""Fixtures for the framework integrations: a tracer sending to a capturing real Ingest API, and canaries.

Every test puts ``CANARIES`` into whatever the framework carries as content (prompts, user input,
model output, tool arguments and results, documents, exception messages) and ends with
``assert_no_canaries(...)``: none may appear in the requests that crossed the socket, in the database
(SQLite file + WAL, or every PostgreSQL row) or in anything logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agenttracer import AgentTracer
from tests.support.capture import Captured, stored_bytes

CANARIES = {
    "prompt": "CANARY-PROMPT-k3v9q",
    "system": "CANARY-SYSTEM-w8z1m",
    "input": "CANARY-INPUT-p2x7r",
    "output": "CANARY-OUTPUT-h5t4n",
    "tool_args": "CANARY-TOOLARG-c9d2s",
    "tool_output": "CANARY-TOOLOUT-f1g6y",
    "document": "CANARY-DOCUMENT-j7b3e",
    "exception": "CANARY-EXCEPTION-u4a8l",
}


class FlakyLookup:
    """A tool body that times out on its first call (with a canary message), then answers."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, order_id: str) -> str:
        self.calls += 1
        if self.calls == 1:
            raise TimeoutError(CANARIES["exception"])
        return CANARIES["tool_output"]


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.name} {record.getMessage()} {record.exc_text or ''}")
        except Exception as exc:
            self.lines.append(f"unformattable {type(exc).__name__}")


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    handler = LogCapture()
    root, agenttracer_log = logging.getLogger(), logging.getLogger("agenttracer")
    saved = (root.level, agenttracer_log.level)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    agenttracer_log.setLevel(logging.DEBUG)
    quiet = [logging.getLogger(n) for n in ("httpcore", "httpx", "asyncio", "openai", "urllib3")]
    # LangGraph logs each retried task with the exception's message at INFO: the framework's own
    # record, not ours, so the canary check reads what it logs from WARNING up.
    framework = [logging.getLogger("langgraph")]
    quiet_saved = [(lg, lg.level) for lg in quiet + framework]
    for lg in quiet:
        lg.setLevel(logging.INFO)
    for lg in framework:
        lg.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        agenttracer_log.setLevel(saved[1])
        for lg, level in quiet_saved:
            lg.setLevel(level)


@pytest.fixture
def tracer(captured_ingest: Captured, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentTracer]:
    for name in ("API_URL", "API_KEY", "AGENT_ID", "AGENT_VERSION", "ENVIRONMENT", "ENABLED"):
        monkeypatch.delenv(f"AGENTTRACER_{name}", raising=False)
    made = AgentTracer(agent_id="integration-agent", agent_version="v1", environment="test",
                       api_url=captured_ingest.url, flush_interval=0.05, timeout=5.0)
    yield made
    made.shutdown(2.0)


def delivered(tracer: AgentTracer) -> None:
    assert tracer.flush(15.0), tracer.stats()
    stats = tracer.stats()
    assert stats.dropped == {} and stats.delivered == stats.produced, stats


def run_detail(query_url: str, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{query_url}/v1/runs/{run_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def only_run(query_url: str) -> dict[str, Any]:
    items = httpx.get(f"{query_url}/v1/runs", params={"limit": 50}, timeout=10).json()["items"]
    assert len(items) == 1, [i["run_id"] for i in items]
    return run_detail(query_url, items[0]["run_id"])


def shape(detail: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(seq, type, name, status, attempt, retry_of_seq, parent_seq) per stored step."""
    return [(s["seq"], s["step_type"], s["name"], s["status"], s["attempt"], s.get("retry_of_seq"),
             s.get("parent_seq")) for s in detail["steps"]]


def assert_no_canaries(captured: Captured, db_url: str, logs: LogCapture, *extra: bytes) -> None:
    sent = captured.bodies()
    assert b'"events"' in sent or b"resourceSpans" in sent or len(sent) > 100, "nothing was captured"
    haystacks = {
        "requests": sent,
        "database": stored_bytes(db_url),
        "logs": "\n".join(logs.lines).encode(),
        **{f"extra{i}": blob for i, blob in enumerate(extra)},
    }
    leaks = [(where, name) for name, canary in CANARIES.items() for where, data in haystacks.items()
             if canary.encode() in data]
    assert leaks == []
