"""The access rules of ``auth_dependency``, on a minimal app per scope served over real HTTP
(the real APIs: test_auth_http.py).

These pin the decision table — which request gets 200, 401, 403 or 429 — without depending on either
API's handlers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI

from agenttracer.server import errors
from agenttracer.server.auth import Principal, TokenBucketLimiter, auth_dependency, auth_required
from agenttracer.server.settings import Settings
from agenttracer.store.sql.keys import create_key, revoke_key
from agenttracer.store.sql.store import SqlStore
from tests.support.servers import serve_app


@contextmanager
def make_client(
    engine: sa.Engine, scope: str, clock: Callable[[], float] = time.monotonic, **settings: object
) -> Iterator[httpx.Client]:
    app = FastAPI()
    errors.install(app)  # the answers' shape, as in both real apps
    guard = auth_dependency(Settings(**settings), SqlStore(engine), scope, clock=clock)  # type: ignore[arg-type]

    @app.get("/v1/thing")
    def thing(who: Principal = Depends(guard)) -> dict[str, str | None]:
        return {"key_id": who.key_id}

    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture
def read_client(engine: sa.Engine) -> Iterator[httpx.Client]:
    with make_client(engine, "read") as client:
        yield client


def test_with_no_key_anywhere_the_api_is_open(read_client: httpx.Client, engine: sa.Engine) -> None:
    assert auth_required(Settings(), SqlStore(engine)) is False
    assert read_client.get("/v1/thing").json() == {"key_id": None}


def test_require_auth_closes_the_api_before_any_key_exists(engine: sa.Engine) -> None:
    assert auth_required(Settings(require_auth=True), SqlStore(engine)) is True
    with make_client(engine, "read", require_auth=True) as client:
        resp = client.get("/v1/thing")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    body = resp.json()
    assert body["error"] == "unauthorized" and body["field"] == "authorization" and "X-API-Key" in body["rule"]


def test_once_a_key_exists_requests_need_one(read_client: httpx.Client, engine: sa.Engine) -> None:
    info, key = create_key(engine, "read")
    assert auth_required(Settings(), SqlStore(engine)) is True
    assert read_client.get("/v1/thing").status_code == 401
    assert read_client.get("/v1/thing", headers={"Authorization": f"Bearer {key}"}).json() == {
        "key_id": info.key_id
    }
    assert read_client.get("/v1/thing", headers={"X-API-Key": key}).status_code == 200


def test_no_key_is_remembered_for_a_second_but_a_revocation_is_not(engine: sa.Engine) -> None:
    now = [100.0]
    with make_client(engine, "read", clock=lambda: now[0]) as client:
        assert client.get("/v1/thing").status_code == 200  # no key anywhere: open, and remembered
        info, key = create_key(engine, "read")
        now[0] += 0.9
        assert client.get("/v1/thing").status_code == 200  # still within the remembered second
        now[0] += 0.2
        assert client.get("/v1/thing").status_code == 401  # asked again: a key exists now
        now[0] += 5
        assert client.get("/v1/thing").status_code == 401  # "a key exists" is never remembered
        assert client.get("/v1/thing", headers={"X-API-Key": key}).status_code == 200
        revoke_key(engine, info.key_id)
        assert client.get("/v1/thing", headers={"X-API-Key": key}).status_code == 401  # at once


def test_a_zero_cache_asks_the_database_every_time(engine: sa.Engine) -> None:
    with make_client(engine, "read", clock=lambda: 100.0, no_key_cache_seconds=0) as client:
        assert client.get("/v1/thing").status_code == 200
        create_key(engine, "read")
        assert client.get("/v1/thing").status_code == 401


def test_the_other_scope_gets_403_naming_both_scopes(read_client: httpx.Client, engine: sa.Engine) -> None:
    _, ingest_key = create_key(engine, "ingest")
    resp = read_client.get("/v1/thing", headers={"Authorization": f"Bearer {ingest_key}"})
    assert resp.status_code == 403
    assert resp.json()["error"] == "wrong_scope"
    assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]
    assert ingest_key not in resp.text


BAD_HEADERS = [
    {"Authorization": "Bearer at_read_not-a-real-key"},
    {"X-API-Key": "at_ingest_guess"},
    {"Authorization": "Bearer something-else-entirely"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer " + "at_read_" + "x" * 400},
]


def test_unknown_or_malformed_keys_get_401_without_echo(read_client: httpx.Client, engine: sa.Engine) -> None:
    create_key(engine, "read")
    for headers in BAD_HEADERS:
        resp = read_client.get("/v1/thing", headers=headers)
        assert resp.status_code == 401, headers
        assert "www-authenticate" in resp.headers
        sent = next(iter(headers.values())).split()[-1]
        assert sent not in resp.text


def test_a_revoked_key_stops_on_the_next_request(read_client: httpx.Client, engine: sa.Engine) -> None:
    info, key = create_key(engine, "read")
    headers = {"Authorization": f"Bearer {key}"}
    assert read_client.get("/v1/thing", headers=headers).status_code == 200
    revoke_key(engine, info.key_id)
    resp = read_client.get("/v1/thing", headers=headers)
    assert resp.status_code == 401 and resp.json()["error"] == "revoked_key"


def test_revoking_the_last_key_keeps_the_api_closed(read_client: httpx.Client, engine: sa.Engine) -> None:
    info, _ = create_key(engine, "read")
    revoke_key(engine, info.key_id)
    assert auth_required(Settings(), SqlStore(engine)) is True
    assert read_client.get("/v1/thing").status_code == 401


def test_ingest_is_rate_limited_per_key_with_retry_after(engine: sa.Engine) -> None:
    _, key_a = create_key(engine, "ingest")
    _, key_b = create_key(engine, "ingest")
    with make_client(engine, "ingest", rate_limit_per_minute=3) as client:
        a = {"X-API-Key": key_a}
        assert [client.get("/v1/thing", headers=a).status_code for _ in range(3)] == [200, 200, 200]
        limited = client.get("/v1/thing", headers=a)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"] == "rate_limited"
        # Another key has its own bucket.
        assert client.get("/v1/thing", headers={"X-API-Key": key_b}).status_code == 200


def test_the_read_api_is_never_rate_limited(engine: sa.Engine) -> None:
    with make_client(engine, "read", rate_limit_per_minute=1) as client:
        assert {client.get("/v1/thing").status_code for _ in range(5)} == {200}


def test_unknown_scope_is_a_programming_error(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="scope must be one of"):
        auth_dependency(Settings(), SqlStore(engine), "admin")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_at_the_configured_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucketLimiter(60, clock=clock)  # one token per second, bursts of 60
    assert all(bucket.acquire("k") == 0.0 for _ in range(60))
    assert bucket.acquire("k") == pytest.approx(1.0)
    clock.now += 0.5
    assert bucket.acquire("k") == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.acquire("k") == 0.0


def test_token_bucket_forgets_idle_identities_so_memory_stays_bounded() -> None:
    clock = FakeClock()
    bucket = TokenBucketLimiter(60, clock=clock, max_tracked=10)
    for i in range(10):
        bucket.acquire(f"old{i}")
    clock.now += 61  # every old bucket is full again: forgetting it changes nothing
    for i in range(5):
        bucket.acquire(f"new{i}")
    assert len(bucket._buckets) <= 10
