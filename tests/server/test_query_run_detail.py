"""Paged run detail over real HTTP: ``GET /v1/runs/{id}`` with ``steps_after`` / ``steps_limit``.

A run bigger than one page goes in through the real Ingest API (two batches) on SQLite, PostgreSQL
and ClickHouse (chdb); walking its pages must return every step once, in seq order, while every page carries
the whole run's exact totals.
"""

from __future__ import annotations

import json

import httpx
import pytest

from agenttracer.server.query.runs import DEFAULT_STEP_PAGE_SIZE, MAX_STEP_PAGE_SIZE
from agenttracer.server.settings import Settings
from tests.support import events as ev

STEPS = DEFAULT_STEP_PAGE_SIZE + 201  # more than one default page, not a multiple of it


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of tests/support/servers.py on every store."""
    return Settings(database_url=store_url)


@pytest.fixture
def big_run(live_ingest: str) -> str:
    rid = ev.new_run_id()
    batch = [ev.run_start(rid)]
    for seq in range(1, STEPS + 1):
        # Every 10th step fails and the next one retries it, so the totals have something to count.
        if seq % 10 == 0:
            batch.append(ev.step(rid, seq, status="error", error_class="TimeoutError", failure_code="timeout"))
        elif seq % 10 == 1 and seq > 1:
            batch.append(ev.step(rid, seq, attempt=2, retry_of_seq=seq - 1))
        else:
            batch.append(ev.step(rid, seq, metadata={"http_status": 200}))
    batch.append(ev.run_end(rid, ended_at=ev.ts(STEPS + 1)))
    # Sent newest half first: pages follow seq, not arrival order.
    for chunk in (batch[600:], batch[:600]):
        r = httpx.post(f"{live_ingest}/v1/ingest", json={"events": chunk}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == len(chunk)
    return rid


def test_walking_the_pages_returns_every_step_once_with_exact_totals_on_each(big_run: str, live_query: str) -> None:
    seqs: list[int] = []
    after: int | None = 0
    pages = []
    while after is not None:
        r = httpx.get(f"{live_query}/v1/runs/{big_run}", params={"steps_after": after}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(len(body["steps"]))
        run = body["run"]
        errors = STEPS // 10
        assert (run["step_count"], run["error_step_count"], run["retry_count"]) == (STEPS, errors, errors)
        assert run["status"] == "success" and run["duration_ms"] is not None
        assert (run["source"], run["abandoned"]) == ("sdk", False)
        seqs += [s["seq"] for s in body["steps"]]
        after = body["next_steps_after"]
        if after is not None:
            assert after == body["steps"][-1]["seq"]
    assert pages == [DEFAULT_STEP_PAGE_SIZE, STEPS - DEFAULT_STEP_PAGE_SIZE]
    assert seqs == list(range(1, STEPS + 1))


def test_the_first_page_is_bounded_in_count_and_size(big_run: str, live_query: str) -> None:
    r = httpx.get(f"{live_query}/v1/runs/{big_run}", timeout=30)
    body = r.json()
    assert len(body["steps"]) == DEFAULT_STEP_PAGE_SIZE
    assert body["next_steps_after"] == DEFAULT_STEP_PAGE_SIZE
    assert len(r.content) < 1_000_000
    # The largest page allowed holds this whole run, and says it is the last.
    r = httpx.get(f"{live_query}/v1/runs/{big_run}", params={"steps_limit": MAX_STEP_PAGE_SIZE}, timeout=30)
    assert len(r.json()["steps"]) == STEPS < MAX_STEP_PAGE_SIZE
    assert r.json()["next_steps_after"] is None


def test_small_pages_and_a_position_past_the_end(big_run: str, live_query: str) -> None:
    url = f"{live_query}/v1/runs/{big_run}"
    body = httpx.get(url, params={"steps_after": 9, "steps_limit": 3}, timeout=30).json()
    assert [(s["seq"], s["status"]) for s in body["steps"]] == [(10, "error"), (11, "ok"), (12, "ok")]
    assert body["steps"][1]["retry_of_seq"] == 10
    assert body["next_steps_after"] == 12
    last = httpx.get(url, params={"steps_after": STEPS - 2, "steps_limit": 2}, timeout=30).json()
    assert [s["seq"] for s in last["steps"]] == [STEPS - 1, STEPS]
    assert last["next_steps_after"] is None  # exactly full, and nothing after it
    past = httpx.get(url, params={"steps_after": STEPS + 50}, timeout=30).json()
    assert past["steps"] == [] and past["next_steps_after"] is None
    assert past["run"]["step_count"] == STEPS


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"steps_limit": "0"}, "steps_limit"),
        ({"steps_limit": str(MAX_STEP_PAGE_SIZE + 1)}, "steps_limit"),
        ({"steps_after": "-1"}, "steps_after"),
        ({"steps_after": "10000000000"}, "steps_after"),
        ({"steps_after": "seven"}, "steps_after"),
    ],
)
def test_bad_page_parameters_are_a_422_naming_the_parameter(
    live_query: str, params: dict[str, str], param: str
) -> None:
    r = httpx.get(f"{live_query}/v1/runs/{ev.new_run_id()}", params=params, timeout=10)
    assert r.status_code == 422, r.text
    assert [err["loc"] for err in r.json()["detail"]] == [["query", param]]
    assert json.dumps(r.json()).find("seven") == -1
