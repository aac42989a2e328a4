"""``GET /v1/runs/{id}`` with the start of a run id instead of the whole UUID, over real HTTP on SQLite, PostgreSQL
and ClickHouse (chdb): a prefix that begins exactly one run's id is that run; more than one is a 409 that says
how many; none a 404; a malformed one a 422 naming the rule."""

from __future__ import annotations

import httpx
import pytest

from agenttracer.server.query.run_ids import run_id_prefix
from agenttracer.server.settings import Settings
from tests.support import events as ev

TWINS = ("3f2b9c1e-8a4d-4e0f-9b7a-1c2d3e4f5a6b", "3f2b9c1e-8a4d-4e0f-9b7a-1c2d3e4f5a6c")
LONER = "3f2c0000-0000-4000-8000-000000000000"
# Ids that sort beside the prefixes' ranges: a dash sorts before the digits, "g" after every hex digit.
NEIGHBOURS = ("3f2a ffff-ffff-4fff-bfff-ffffffffffff".replace(" ", ""), "3f2d0000-0000-4000-8000-000000000000")


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of tests/support/servers.py on every store."""
    return Settings(database_url=store_url)


@pytest.fixture
def stored(live_ingest: str) -> None:
    batch = []
    for run_id in (*TWINS, LONER, *NEIGHBOURS):
        batch += [ev.run_start(run_id), ev.run_end(run_id, ended_at=ev.ts(1))]
    response = httpx.post(f"{live_ingest}/v1/ingest", json={"events": batch}, timeout=30)
    assert response.status_code == 200 and response.json()["accepted"] == len(batch), response.text


def get(live_query: str, run_id: str) -> httpx.Response:
    return httpx.get(f"{live_query}/v1/runs/{run_id}", timeout=10)


# The cases of each rule run in one test per store (a database each would cost ~1 s on chdb).


def test_a_prefix_of_one_run_is_that_run(stored: None, live_query: str) -> None:
    for prefix in ("3f2c", "3F2C", "3f2c0000", "3f2c0000-00", "3f2c000000", "3f2c0000-"):
        response = get(live_query, prefix)
        assert response.status_code == 200, (prefix, response.text)
        assert response.json()["run"]["run_id"] == LONER, prefix


def test_the_whole_id_with_or_without_dashes_still_names_the_run(stored: None, live_query: str) -> None:
    for run_id in (TWINS[0], TWINS[0].replace("-", ""), TWINS[0].upper()):
        assert get(live_query, run_id).json()["run"]["run_id"] == TWINS[0]


def test_a_prefix_of_several_runs_is_a_409_saying_how_many(stored: None, live_query: str) -> None:
    for prefix in ("3f2b", "3f2b9c1e-8a4d", "3f2b9c1e8a4d4e0f9b7a1c2d3e4f5a6"):
        response = get(live_query, prefix)
        assert response.status_code == 409, (prefix, response.text)
        body = response.json()
        assert (body["error"], body["field"], body["matches"]) == ("ambiguous_prefix", "run_id", 2), prefix
        assert "2 runs" in body["message"], prefix


def test_a_prefix_of_no_run_is_a_404(stored: None, live_query: str) -> None:
    response = get(live_query, "3f2e")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_a_malformed_prefix_is_a_422_naming_the_rule(live_query: str) -> None:
    for value in ("3f2", "3f-2b9c1e", "3f2b9c1e-8a4-d", "xyz1", "3f2b 9c1e", "-3f2b"):
        response = get(live_query, value)
        assert response.status_code == 422, (value, response.text)
        body = response.json()
        assert body["detail"][0]["loc"] == ["path", "run_id"], value
        assert "prefix of one of at least 4 hex digits" in body["detail"][0]["msg"], value


@pytest.mark.parametrize(
    ("value", "prefix"),
    [("3F2B", "3f2b"), ("3f2b9c1e8", "3f2b9c1e-8"), ("3f2b9c1e-", "3f2b9c1e"), (" 3f2b ", "3f2b"),
     ("3f2b9c1e8a4d4e0f9b7a1c2d3e4f5a6", "3f2b9c1e-8a4d-4e0f-9b7a-1c2d3e4f5a6"),
     ("3f2", None), ("3f2b9c1e8a4d4e0f9b7a1c2d3e4f5a6b", None), ("3f2b-9c1e", None), ("ｆｆｆｆ", None)],
)
def test_prefix_rule(value: str, prefix: str | None) -> None:
    assert run_id_prefix(value) == prefix
