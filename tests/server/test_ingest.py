"""The Ingest API over real HTTP (uvicorn on loopback) on every store (SQLite, PostgreSQL, ClickHouse):
batches round-trip, replays store once, out-of-order events are kept, and one bad event never sinks the
rest."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agenttracer.server.settings import Settings
from agenttracer.store import open_store
from agenttracer.store.interface import Store
from tests.support.events import failure, full_run, new_run_id, run_end, run_start, step, ts
from tests.support.stored import stored_failures, stored_run, stored_steps, table_counts


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of this module run on every store."""
    return Settings(database_url=store_url)


@pytest.fixture
def db(store_url: str) -> Iterator[Store]:
    """The store the live servers write to, opened by the test to look at what was stored."""
    opened = open_store(store_url)
    yield opened
    opened.close()


def post(base: str, events: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(f"{base}/v1/ingest", json={"events": events}, timeout=30)


def counts(db: Store) -> dict[str, int]:
    return dict(zip(("runs", "steps", "failures"), table_counts(db), strict=True))


def run_row(db: Store, run_id: str) -> dict[str, Any]:
    return stored_run(db, run_id)


def test_a_batch_round_trips_into_the_database(live_ingest: str, db: Store) -> None:
    rid = new_run_id()
    events = [
        run_start(rid, metadata={"model_family": "gpt", "tokens_in": 12}),
        step(rid, 1, step_type="plan", name="analyze_query"),
        step(rid, 2, name="billing_api", status="error", error_class="TimeoutError", failure_code="timeout"),
        step(rid, 3, name="billing_api", attempt=2, retry_of_seq=2),
        step(rid, 4, step_type="respond", name="generate_response"),
        failure(rid, failure_code="timeout", step_seq=2, message="billing api timed out after 30s"),
        run_end(rid, status="partial"),
    ]
    resp = post(live_ingest, events)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (7, 0, 0)
    assert [r["status"] for r in body["results"]] == ["accepted"] * 7
    assert [r["index"] for r in body["results"]] == list(range(7))

    run = run_row(db, rid)
    assert (run["agent_id"], run["agent_version"], run["environment"]) == ("support-agent", "v1.0.0", "production")
    assert run["status"] == "partial"
    assert (run["step_count"], run["error_step_count"], run["retry_count"]) == (4, 1, 1)
    assert (run["failure_type"], run["failure_code"]) == ("tool", "timeout")
    assert run["duration_ms"] == pytest.approx(60_000.0)
    steps = stored_steps(db, rid)
    assert [s["name"] for s in steps] == ["analyze_query", "billing_api", "billing_api", "generate_response"]
    assert [s["step_type"] for s in steps] == ["plan", "tool", "tool", "respond"]
    assert steps[2]["attempt"] == 2 and steps[2]["retry_of_seq"] == 2
    assert steps[1]["error_class"] == "TimeoutError"
    [(_type, _code, step_seq, message)] = stored_failures(db, rid)
    assert step_seq == 2 and message == "billing api timed out after 30s"


def test_replaying_a_batch_changes_nothing(live_ingest: str, db: Store) -> None:
    rid = new_run_id()
    events = [*full_run(rid, steps=5), failure(rid)]
    assert post(live_ingest, events).json()["accepted"] == 8
    before = counts(db)
    run_before = run_row(db, rid)

    again = post(live_ingest, events)
    assert again.status_code == 200
    body = again.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 8, 0)
    assert counts(db) == before
    run_after = run_row(db, rid)
    for col in ("step_count", "error_step_count", "retry_count", "status", "started_at", "ended_at", "meta_removed"):
        assert run_after[col] == run_before[col], col


def test_events_before_their_run_start_are_kept_and_counts_are_right(live_ingest: str, db: Store) -> None:
    rid = new_run_id()
    # Steps first (a placeholder run is created), the end next, the start last.
    first = post(live_ingest, [step(rid, 3, attempt=2, retry_of_seq=2), step(rid, 2, status="error")])
    assert first.json()["accepted"] == 2
    placeholder = run_row(db, rid)
    assert placeholder["agent_id"] is None
    assert placeholder["started_at"] is not None  # never NULL: the query side sorts on it
    assert (placeholder["step_count"], placeholder["error_step_count"], placeholder["retry_count"]) == (2, 1, 1)

    assert post(live_ingest, [run_end(rid, status="success"), step(rid, 1)]).json()["accepted"] == 2
    assert post(live_ingest, [run_start(rid)]).json()["accepted"] == 1

    run = run_row(db, rid)
    assert run["agent_id"] == "support-agent" and run["status"] == "success"
    assert (run["step_count"], run["error_step_count"], run["retry_count"]) == (3, 1, 1)
    assert run["duration_ms"] == pytest.approx(60_000.0)
    assert counts(db)["runs"] == 1


def test_a_conflicting_run_start_is_rejected_not_applied(live_ingest: str, db: Store) -> None:
    rid = new_run_id()
    assert post(live_ingest, [run_start(rid)]).status_code == 200
    resp = post(live_ingest, [run_start(rid, agent_version="v9")])
    assert resp.status_code == 422
    result = resp.json()["results"][0]
    assert result["status"] == "rejected"
    assert result["errors"][0]["field"] == "agent_version"
    assert "v9" not in resp.text  # the rejected value is never echoed
    assert run_row(db, rid)["agent_version"] == "v1.0.0"


def test_a_second_different_run_end_or_failure_is_a_conflict(live_ingest: str, db: Store) -> None:
    rid = new_run_id()
    post(live_ingest, [run_start(rid), failure(rid), run_end(rid, status="failure")])
    resp = post(live_ingest, [run_end(rid, status="success"), failure(rid, failure_code="rate_limited")])
    assert resp.status_code == 422
    assert [e["errors"][0]["field"] for e in resp.json()["results"]] == ["status", "failure_code"]
    run = run_row(db, rid)
    assert (run["status"], run["failure_code"]) == ("failure", "timeout")


def test_partial_success_stores_the_good_events_and_names_what_is_wrong(live_ingest: str, db: Store) -> None:
    rid = new_run_id()
    events = [
        run_start(rid),
        step(rid, 1),
        step(rid, 2, latency_ms=-5),
        step(rid, 3, step_type="thinking"),
        step(rid, 4, started_at=ts(10), ended_at=ts(9)),
        {"type": "mystery", "run_id": rid},
        "not an object",
        step(rid, 5),
    ]
    resp = post(live_ingest, events)
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert [r["status"] for r in results] == [
        "accepted", "accepted", "rejected", "rejected", "rejected", "rejected", "rejected", "accepted"
    ]
    assert results[2]["errors"] == [{"field": "latency_ms", "rule": "must be >= 0", "code": "latency_range"}]
    assert results[3]["errors"][0]["field"] == "step_type" and "plan" in results[3]["errors"][0]["rule"]
    assert "thinking" not in results[3]["errors"][0]["rule"]
    assert results[4]["errors"][0]["field"] == "ended_at"
    assert results[5]["errors"][0]["field"] == "type"
    assert results[6]["errors"][0]["rule"] == "must be an object"
    assert [s["seq"] for s in stored_steps(db, rid)] == [1, 5] and counts(db)["steps"] == 2
    assert run_row(db, rid)["step_count"] == 2


def test_metadata_the_privacy_policy_refuses_is_removed_and_reported_by_key(live_ingest: str, db: Store) -> None:
    rid = new_run_id()
    secret = "my prompt text is here"
    events = [
        run_start(rid, metadata={"user_prompt": secret, "http_status": 200}),
        step(rid, 1, metadata={"retries": 2, "raw_response": secret}, completion=secret),
    ]
    resp = post(live_ingest, events)
    assert resp.status_code == 200
    body = resp.json()
    assert body["accepted"] == 2 and body["removed"] == 3
    assert body["results"][0]["removed"] == [{"key": "metadata.user_prompt", "reason": "forbidden_key"}]
    assert {r["key"] for r in body["results"][1]["removed"]} == {"metadata.raw_response", "completion"}
    assert secret not in resp.text
    run = run_row(db, rid)
    assert run["meta_removed"] == 1
    [step_row] = stored_steps(db, rid)
    assert step_row["meta_removed"] == 2
    stored = str(run["meta"]) + str(step_row["meta"])
    assert secret not in stored and "200" in stored


def test_all_events_rejected_answers_422(live_ingest: str, db: Store) -> None:
    resp = post(live_ingest, [step("not-a-uuid", 1)])
    assert resp.status_code == 422
    assert resp.json()["results"][0]["errors"][0]["field"] == "run_id"
    assert counts(db) == {"runs": 0, "steps": 0, "failures": 0}


def test_the_ingested_run_reads_back_through_the_query_api(live_ingest: str, live_query: str) -> None:
    rid = new_run_id()
    events = [run_start(rid), step(rid, 2, name="second"), step(rid, 1, name="first"), run_end(rid)]
    assert post(live_ingest, events).json()["accepted"] == 4
    detail = httpx.get(f"{live_query}/v1/runs/{rid}", timeout=30)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert [s["seq"] for s in body["steps"]] == [1, 2]
    assert [s["name"] for s in body["steps"]] == ["first", "second"]
    assert body["run"]["status"] == "success" and body["run"]["step_count"] == 2


def test_concurrent_requests_all_succeed_and_count_exactly(live_ingest: str, db: Store) -> None:
    rid = new_run_id()
    statuses: list[int] = []

    def send(first_seq: int) -> None:
        with httpx.Client(timeout=60) as client:
            for offset in range(0, 20, 5):
                seqs = range(first_seq + offset, first_seq + offset + 5)
                events = [run_start(rid), *(step(rid, s) for s in seqs)]
                statuses.append(client.post(f"{live_ingest}/v1/ingest", json={"events": events}).status_code)

    threads = [threading.Thread(target=send, args=(1 + 20 * i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 24  # no "database is locked", no deadlock
    run = run_row(db, rid)
    assert run["step_count"] == 120 and run["agent_id"] == "support-agent"
