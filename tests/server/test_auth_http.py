"""API keys against the real Ingest and Query APIs, over real HTTP, on SQLite, PostgreSQL and ClickHouse (chdb).

The decision table itself is pinned in test_auth_rules.py; here the two real apps share one database
and the keys an operator would make, and we check what their clients see.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from agenttracer.server import ingest, query
from agenttracer.server.settings import Settings
from agenttracer.store.interface import Store
from tests.support.servers import serve_app


@dataclass
class Stack:
    ingest: str
    query: str


def start(settings: Settings, stack: ExitStack) -> Stack:
    return Stack(
        ingest=stack.enter_context(serve_app(ingest.create_app(settings))),
        query=stack.enter_context(serve_app(query.create_app(settings))),
    )


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of tests/support/servers.py on every store; keys are made through the store."""
    return Settings(database_url=store_url)


@pytest.fixture
def apps(live_settings: Settings) -> Iterator[Stack]:
    with ExitStack() as stack:
        yield start(live_settings, stack)


def batch() -> tuple[str, dict[str, object]]:
    run_id = str(uuid.uuid4())
    t0 = datetime.now(timezone.utc) - timedelta(seconds=1)
    ident = {"run_id": run_id, "agent_id": "auth-check", "agent_version": "v1", "environment": "test"}
    return run_id, {
        "events": [
            {"type": "run_start", **ident, "started_at": t0.isoformat()},
            {"type": "run_end", **ident, "ended_at": (t0 + timedelta(milliseconds=5)).isoformat(),
             "status": "success"},
        ]
    }


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def uncached_apps(live_settings: Settings) -> Iterator[Stack]:
    """The apps without the one-second memory of "no key exists" (test_auth_rules.py pins that)."""
    with ExitStack() as stack:
        yield start(dataclasses.replace(live_settings, no_key_cache_seconds=0), stack)


def test_open_until_the_first_key_then_each_api_takes_only_its_own_scope(
    uncached_apps: Stack, store: Store
) -> None:
    apps = uncached_apps
    run_id, body = batch()
    assert httpx.post(f"{apps.ingest}/v1/ingest", json=body).status_code == 200
    assert httpx.get(f"{apps.query}/v1/runs/{run_id}").status_code == 200

    _, ingest_key = store.create_key("ingest")
    _, read_key = store.create_key("read")

    # Without a key, both APIs now answer 401 with a JSON body and a challenge.
    for resp in (httpx.post(f"{apps.ingest}/v1/ingest", json=body), httpx.get(f"{apps.query}/v1/runs")):
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert resp.headers["content-type"].startswith("application/json")
    # The wrong scope is 403 on either side; the right one works, in either header.
    assert httpx.post(f"{apps.ingest}/v1/ingest", json=body, headers=bearer(read_key)).status_code == 403
    assert httpx.get(f"{apps.query}/v1/runs", headers=bearer(ingest_key)).status_code == 403
    run_id, body = batch()
    assert httpx.post(f"{apps.ingest}/v1/ingest", json=body, headers={"X-API-Key": ingest_key}).status_code == 200
    detail = httpx.get(f"{apps.query}/v1/runs/{run_id}", headers=bearer(read_key))
    assert detail.status_code == 200 and detail.json()["run"]["agent_id"] == "auth-check"
    # Health checks stay open for load balancers.
    assert httpx.get(f"{apps.ingest}/health").status_code == 200
    assert httpx.get(f"{apps.query}/health").status_code == 200


def test_revocation_is_effective_on_the_very_next_request(apps: Stack, store: Store) -> None:
    ingest_info, ingest_key = store.create_key("ingest")
    read_info, read_key = store.create_key("read")
    _, body = batch()
    assert httpx.post(f"{apps.ingest}/v1/ingest", json=body, headers=bearer(ingest_key)).status_code == 200
    assert httpx.get(f"{apps.query}/v1/runs", headers=bearer(read_key)).status_code == 200
    store.revoke_key(ingest_info.key_id)
    store.revoke_key(read_info.key_id)
    assert httpx.post(f"{apps.ingest}/v1/ingest", json=body, headers=bearer(ingest_key)).status_code == 401
    assert httpx.get(f"{apps.query}/v1/runs", headers=bearer(read_key)).status_code == 401


def test_keys_are_never_echoed_or_logged(apps: Stack, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    _, ingest_key = store.create_key("ingest")
    _, read_key = store.create_key("read")
    made_up = "at_read_" + "Z" * 43
    caplog.set_level(logging.DEBUG)
    _, body = batch()
    responses = [
        httpx.post(f"{apps.ingest}/v1/ingest", json=body, headers=bearer(read_key)),
        httpx.get(f"{apps.query}/v1/runs", headers=bearer(ingest_key)),
        httpx.get(f"{apps.query}/v1/runs", headers={"X-API-Key": made_up}),
        httpx.post(f"{apps.ingest}/v1/ingest", json=body, headers=bearer(ingest_key)),
    ]
    assert [r.status_code for r in responses] == [403, 403, 401, 200]
    for secret in (ingest_key, read_key, made_up):
        assert all(secret not in r.text and secret not in str(r.headers) for r in responses)
        assert secret not in caplog.text


def test_ingest_rate_limit_answers_429_with_retry_after(live_settings: Settings, store: Store) -> None:
    _, key = store.create_key("ingest")
    with ExitStack() as stack:
        apps = start(dataclasses.replace(live_settings, rate_limit_per_minute=2), stack)
        codes = []
        for _ in range(3):
            _, body = batch()
            resp = httpx.post(f"{apps.ingest}/v1/ingest", json=body, headers=bearer(key))
            codes.append(resp.status_code)
        assert codes == [200, 200, 429]
        assert int(resp.headers["retry-after"]) >= 1
        # Reads are not rate limited.
        _, read_key = store.create_key("read")
        assert {httpx.get(f"{apps.query}/v1/runs", headers=bearer(read_key)).status_code for _ in range(4)} == {200}


def test_require_auth_closes_both_apis_before_any_key(live_settings: Settings) -> None:
    with ExitStack() as stack:
        apps = start(dataclasses.replace(live_settings, require_auth=True), stack)
        _, body = batch()
        assert httpx.post(f"{apps.ingest}/v1/ingest", json=body).status_code == 401
        assert httpx.get(f"{apps.query}/v1/runs").status_code == 401


def documented_auth_body(row_label: str) -> object:
    """The JSON body docs/api-sequences.md shows for one row of its Query API key table."""
    doc = (Path(__file__).parents[2] / "docs" / "api-sequences.md").read_text(encoding="utf-8")
    row = next(line for line in doc.splitlines() if line.startswith(f"| {row_label} |"))
    return json.loads(row.rsplit("|", 2)[1].strip().strip("`"))


def test_the_documented_key_errors_are_what_the_query_api_answers(apps: Stack, store: Store) -> None:
    _, ingest_key = store.create_key("ingest")
    store.create_key("read")
    assert httpx.get(f"{apps.query}/v1/runs").json() == documented_auth_body("no key")
    wrong = httpx.get(f"{apps.query}/v1/runs", headers=bearer(ingest_key))
    assert wrong.json() == documented_auth_body("an ingest key")
