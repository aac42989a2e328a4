"""Real error answers of both APIs, from a live server, validate against the schema the app's own OpenAPI
document declares for that status (JSON Schema 2020-12, as OpenAPI 3.1 uses)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import jsonschema
import pytest

from agenttracer.server import ingest, query
from agenttracer.server.settings import Settings
from tests.support.events import new_run_id, run_start, step
from tests.support.servers import serve_app


def _declared(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    responses = spec["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not declare {status}"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    # Resolve #/components/... against the whole document.
    return {**schema, "components": spec["components"]}


def _check(spec: dict[str, Any], path: str, method: str, resp: httpx.Response) -> None:
    schema = _declared(spec, path, method, resp.status_code)
    jsonschema.Draft202012Validator(schema).validate(resp.json())


INGEST_CASES: list[tuple[str, bytes, dict[str, str], int]] = [
    ("not json", b"{nope", {}, 400),
    ("not an object", b"[1, 2]", {}, 422),
    ("no events", b'{"other": 1}', {}, 422),
    ("empty events", b'{"events": []}', {}, 422),
    ("every event rejected", b'{"events": [{"type": "step"}, 5, {"type": "mystery"}]}', {}, 422),
    ("too many events", b'{"events": [' + b",".join([b"{}"] * 1001) + b"]}", {}, 413),
    ("wrong media type", b"{}", {"content-type": "text/plain"}, 415),
    ("bad gzip", b"not gzip", {"content-encoding": "gzip"}, 400),
]


@pytest.mark.parametrize("case", INGEST_CASES, ids=[c[0] for c in INGEST_CASES])
def test_ingest_error_bodies_match_the_declared_schema(live_settings: Settings, case: Any) -> None:
    _, body, headers, status = case
    app = ingest.create_app(live_settings)
    spec = app.openapi()
    with serve_app(app) as url:
        resp = httpx.post(
            f"{url}/v1/ingest", content=body, headers={"content-type": "application/json", **headers}, timeout=30
        )
    assert resp.status_code == status, resp.text
    _check(spec, "/v1/ingest", "post", resp)


def test_ingest_success_and_partial_rejection_match_the_declared_schema(live_settings: Settings) -> None:
    app = ingest.create_app(live_settings)
    spec = app.openapi()
    rid = new_run_id()
    events = [run_start(rid), step(rid, 1), step(rid, 2, latency_ms=-1.0)]
    body = gzip.compress(json.dumps({"events": events}).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    with serve_app(app) as url:
        resp = httpx.post(f"{url}/v1/ingest", content=body, headers=headers, timeout=30)
    assert resp.status_code == 200
    assert resp.json()["results"][2]["errors"][0]["code"] == "latency_range"
    _check(spec, "/v1/ingest", "post", resp)


QUERY_CASES: list[tuple[str, str]] = [
    ("/v1/runs", "since=0001-01-01T00:00:00%2B01:00"),
    ("/v1/runs", "agent_id=a%00b"),
    ("/v1/runs", "cursor=forged"),
    ("/v1/runs", "limit=0"),
    ("/v1/stats", "until=9999-12-31T23:59:59-01:00"),
    ("/v1/stats", "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z"),
    ("/v1/compare", "agent_id=a&base=v1&candidate=v1"),
    ("/v1/compare", "agent_id=a%00&base=v1&candidate=v2"),
]


@pytest.mark.parametrize("case", QUERY_CASES, ids=[c[1] for c in QUERY_CASES])
def test_query_error_bodies_match_the_declared_schema(live_settings: Settings, case: tuple[str, str]) -> None:
    path, params = case
    app = query.create_app(live_settings)
    spec = app.openapi()
    with serve_app(app) as url:
        resp = httpx.get(f"{url}{path}?{params}", timeout=30)
    assert resp.status_code == 422, resp.text
    _check(spec, path, "get", resp)
