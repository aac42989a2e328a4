"""Both APIs answer every error in the one shape of server/errors.py, documented in docs/api-sequences.md, on
every store (SQLite, PostgreSQL, ClickHouse via chdb)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from agenttracer.server.settings import Settings

SHAPE = {"error", "field", "rule", "message", "detail"}


def assert_shape(resp: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert isinstance(body, dict) and set(body) >= SHAPE, body
    assert body["error"] == code and isinstance(body["message"], str) and body["message"]
    return body


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of tests/support/servers.py on every store."""
    return Settings(database_url=store_url)


def test_ingest_errors_have_the_one_shape(live_ingest: str) -> None:
    wrong_type = httpx.post(f"{live_ingest}/v1/ingest", content=b"{}", headers={"Content-Type": "text/plain"})
    body = assert_shape(wrong_type, 415, "unsupported_media_type")
    assert body["field"] == "content-type" and body["detail"] == body["message"]
    not_json = httpx.post(f"{live_ingest}/v1/ingest", content=b"{not json",
                          headers={"Content-Type": "application/json"})
    assert assert_shape(not_json, 400, "invalid_json")["field"] == "body"
    unknown_route = httpx.get(f"{live_ingest}/v1/nothing-here")
    assert_shape(unknown_route, 404, "not_found")


def test_query_errors_have_the_one_shape_and_keep_detail(live_query: str) -> None:
    missing = httpx.get(f"{live_query}/v1/runs/{uuid.uuid4()}")
    body = assert_shape(missing, 404, "not_found")
    assert body["field"] == "run_id" and body["detail"] == body["message"]

    bad = httpx.get(f"{live_query}/v1/runs", params={"limit": "many"})
    body = assert_shape(bad, 422, "invalid_parameters")
    assert body["field"] == "limit" and "many" not in str(body)  # the rejected value is never echoed
    detail = body["detail"]
    assert isinstance(detail, list) and detail[0]["loc"] == ["query", "limit"]
