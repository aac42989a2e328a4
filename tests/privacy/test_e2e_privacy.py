"""End to end: the hostile corpus goes in through the SDK and through raw HTTP, and comes out nowhere.

A real Ingest API (uvicorn on loopback, SQLite and PostgreSQL) receives every hostile string as a
metadata value, a metadata key, a step name, a failure message, an unknown event field, and in fields
that fail validation. Then the raw SQLite file *and its WAL*, a dump of every column of every
PostgreSQL table in the test schema, everything logged (at DEBUG, plus the process's stdout/stderr)
and every ingest response body are searched for each hostile string in every spelling (as sent,
normalised, its sensitive core, and JSON-escaped). None may appear — and the events themselves must
be stored, with the removed keys listed by reason code.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from agenttracer import AgentTracer
from agenttracer.privacy import REASONS
from agenttracer.store.sql.schema.engine import make_engine
from tests.privacy import corpus_data
from tests.support.capture import pg_dump, sqlite_bytes
from tests.support.events import failure, run_end, run_start, step

pytestmark = pytest.mark.slow

HOSTILE = corpus_data.hostile()
# Codes the Ingest API adds for fields outside the policy (still key + reason, never a value).
SERVER_CODES = {"unknown_field", "not_an_object", "policy_error", "invalid_characters", "too_long"}


class _Capture(logging.Handler):
    """Keeps every formatted log record (message, arguments, traceback) of the whole process."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.name} {record.levelname} {self.format(record)}")
        except Exception as exc:  # a record that cannot be formatted still leaves a trace
            self.lines.append(f"{record.name} unformattable: {type(exc).__name__}")


@pytest.fixture
def captured_logs() -> Iterator[_Capture]:
    handler = _Capture()
    handler.setFormatter(logging.Formatter("%(message)s"))
    loggers = [logging.getLogger(name) for name in ("", "agenttracer", "uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    # httpx/httpcore at DEBUG only describe connections, and would just slow the test down.
    quiet = [logging.getLogger(n) for n in ("httpcore", "httpx", "hpack", "asyncio")]
    quiet_saved = [(lg, lg.level) for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for lg, level in saved + quiet_saved:
            lg.setLevel(level)
        for lg in loggers:
            lg.removeHandler(handler)


def _message(entry: dict[str, str]) -> str | None:
    # Short third-person prose is allowed in failure messages by design (docs/data-flow.md).
    return None if entry["category"] == "prose" else f"Step failed: {entry['value']} (attempt 2)"


def raw_events(tag: str) -> list[dict[str, Any]]:
    """One run per hostile entry: hostile metadata values and keys, step name, message, unknown field."""
    events: list[dict[str, Any]] = []
    for i, entry in enumerate(HOSTILE):
        value, run_id = entry["value"], str(uuid.uuid4())
        events.append(run_start(run_id, agent_id=f"privacy-{tag}", metadata={"field": value, "ok": i}))
        events.append(step(run_id, 1, name=value, metadata={"field": value, value: 1, "tool": "web_search"}))
        bad = step(run_id, 2, name="lookup_order", metadata={"n": 1})
        bad[value] = "unknown field named by a hostile string"
        events.append(bad)
        message = _message(entry)
        if message is not None:
            events.append(failure(run_id, step_seq=1, message=message))
        events.append(run_end(run_id, agent_id=f"privacy-{tag}", metadata={value: True}))
    return events


def invalid_events(tag: str) -> list[dict[str, Any]]:
    """Hostile strings in fields that fail validation: the 422-style errors must not echo them."""
    events = []
    for entry in HOSTILE[::7]:
        value, run_id = entry["value"], str(uuid.uuid4())
        events.append(step(run_id, 1, step_type=value))
        events.append(step(run_id, 2, status=value, started_at=value))
        events.append(failure(run_id, failure_type=value, failure_code=value))
        events.append(run_start(run_id, agent_id=value, environment=value))
        events.append({**step(run_id, 3), "seq": value, "metadata": value})
    return events


def send_raw(base_url: str, events: list[dict[str, Any]]) -> list[str]:
    bodies = []
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for start in range(0, len(events), 1000):
            resp = client.post("/v1/ingest", json={"events": events[start : start + 1000]})
            assert resp.status_code in (200, 207, 422), resp.status_code
            bodies.append(resp.text)
    return bodies


def send_malformed(base_url: str) -> list[str]:
    """Broken bodies that carry hostile strings: cut-off JSON, wrong envelopes. Errors must not echo them."""
    bodies = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for entry in HOSTILE[::20]:
            value = entry["value"]
            cut = json.dumps({"events": [{"type": "step", "name": value, "metadata": {"k": value}}]})[:-3]
            for content in (cut, json.dumps({"events": value}), json.dumps({value: []}), json.dumps([value])):
                resp = client.post("/v1/ingest", content=content.encode(), headers={"Content-Type": "application/json"})
                assert 400 <= resp.status_code < 500, resp.status_code
                bodies.append(resp.text)
    return bodies


def send_sdk(base_url: str) -> None:
    tracer = AgentTracer(agent_id="privacy-sdk", agent_version="1.0.0", environment="test", api_url=base_url)
    try:
        for entry in HOSTILE:
            value = entry["value"]
            with tracer.start_run(metadata={"field": value, value: 1}) as run:
                with run.step("tool", value, metadata={"field": value, value: 2, "tool": "web_search"}) as s:
                    s.set(other=value)
                message = _message(entry)
                if message is not None:
                    run.record_failure("tool", "timeout", message=message)
        assert tracer.flush(120), "the SDK did not deliver the corpus in time"
        stats = tracer.stats()
        assert stats.delivered == stats.produced and stats.delivered >= 3 * len(HOSTILE), stats
    finally:
        tracer.shutdown(5)


def stored_count(db_url: str, table: str, where: str = "") -> int:
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one())
    finally:
        engine.dispose()


def byte_patterns(entry: dict[str, str]) -> set[bytes]:
    """Each spelling as UTF-8 and as it looks inside JSON text (escaped non-ASCII)."""
    out = set()
    for form in corpus_data.forms(entry):
        if len(form) >= 4:
            out.add(form.encode("utf-8"))
            out.add(json.dumps(form)[1:-1].encode("ascii"))
    return out


def leaks_in(haystacks: dict[str, bytes]) -> list[tuple[str, str, str, str]]:
    found = []
    for entry in HOSTILE:
        patterns = byte_patterns(entry)
        for where, data in haystacks.items():
            if any(p in data for p in patterns):
                found.append((where, entry["category"], entry["spelling"], entry["value"]))
    return found


def test_the_hostile_corpus_is_stored_nowhere(
    live_ingest: str, db_url: str, backend: str, captured_logs: _Capture, capfd: pytest.CaptureFixture[str]
) -> None:
    events = raw_events(backend)
    bodies = send_raw(live_ingest, events)
    bodies += send_raw(live_ingest, invalid_events(backend))
    bodies += send_malformed(live_ingest)
    send_sdk(live_ingest)

    # The events themselves were stored: the policy removed content, not telemetry.
    assert stored_count(db_url, "runs", "WHERE agent_id = 'privacy-sdk'") == len(HOSTILE)
    assert stored_count(db_url, "runs", f"WHERE agent_id = 'privacy-{backend}'") == len(HOSTILE)
    # Raw steps named with a newline (PEM blocks) are refused whole by the wire rules for names.
    multiline = sum(1 for e in HOSTILE if "\n" in e["value"])
    assert stored_count(db_url, "steps") == 3 * len(HOSTILE) - multiline
    assert stored_count(db_url, "failures") >= 2 * sum(1 for e in HOSTILE if e["category"] != "prose")

    # The responses list what was removed, by key and reason code.
    results = [r for body in bodies[: (len(events) + 999) // 1000] for r in json.loads(body)["results"]]
    removed = [item for r in results for item in r.get("removed", [])]
    assert {item["reason"] for item in removed} <= set(REASONS) | SERVER_CODES
    first_step = next(r for r in results if r.get("seq") == 1)
    assert {"key": "metadata.field", "reason": first_step["removed"][0]["reason"]} in first_step["removed"]

    out, err = capfd.readouterr()
    haystacks = {
        "responses": "\n".join(bodies).encode(),
        "logs": "\n".join(captured_logs.lines).encode(),
        "stdout/stderr": (out + err).encode(),
        "database": sqlite_bytes(db_url) if backend == "sqlite" else pg_dump(db_url).encode(),
    }
    assert len(haystacks["database"]) > 100_000, "the database holds suspiciously little"
    assert leaks_in(haystacks) == []


def test_the_search_would_find_a_leak() -> None:
    """The leak search is not vacuous: every hostile entry is found in JSON text that holds it."""
    blob = b"\n".join(json.dumps({"k": entry["value"]}).encode() for entry in HOSTILE)
    found = {(c, s, v) for _, c, s, v in leaks_in({"blob": blob})}
    assert found == {(e["category"], e["spelling"], e["value"]) for e in HOSTILE}
