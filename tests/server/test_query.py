"""The Query API over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL.

Runs go in through the real Ingest API. One database with both servers per backend serves the
read-only checks; tests that add runs get their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from agenttracer.server import ingest
from agenttracer.server.query import create_app
from agenttracer.server.settings import Settings
from agenttracer.store import open_store
from agenttracer.store.sql.keys import create_key
from agenttracer.store.sql.schema.engine import make_engine
from tests.support.db import (
    STORE_BACKENDS,
    drop_chdb_database,
    drop_pg_schema,
    new_chdb_url,
    new_pg_schema_url,
)
from tests.support.rundata import T0, RunSpec, ingest_runs, insert_runs, sample_runs
from tests.support.servers import serve_app as serve


@dataclass
class Fleet:
    url: str
    db_url: str
    specs: list[RunSpec]

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=10)


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    schema = None
    chdb = None
    if request.param == "sqlite":
        db_url = f"sqlite:///{(tmp_path_factory.mktemp('q') / 'at.db').as_posix()}"
    elif request.param == "chdb":
        db_url = chdb = new_chdb_url()
    else:
        db_url, schema = new_pg_schema_url()
    try:
        store = open_store(db_url)
        store.migrate()
        store.close()
        specs = sample_runs()
        settings = Settings(database_url=db_url)
        with serve(ingest.create_app(settings)) as ingest_url:
            ingest_runs(ingest_url, specs)
        with serve(create_app(settings)) as url:
            yield Fleet(url, db_url, specs)
    finally:
        if schema:
            drop_pg_schema(schema)
        if chdb:
            drop_chdb_database(chdb)


def _newest_first(specs: list[RunSpec]) -> list[str]:
    return [s.run_id for s in sorted(specs, key=lambda s: (s.started_at, s.run_id), reverse=True)]


FILTER_CASES: list[tuple[dict[str, str], Callable[[RunSpec], bool]]] = [
    ({"agent_id": "search-agent"}, lambda s: s.agent_id == "search-agent"),
    ({"agent_version": "v2"}, lambda s: s.agent_version == "v2"),
    ({"environment": "staging"}, lambda s: s.environment == "staging"),
    ({"status": "failure"}, lambda s: s.status == "failure"),
    ({"status": "partial"}, lambda s: s.status == "partial"),
    ({"failure_type": "tool"}, lambda s: bool(s.failure) and s.failure["failure_type"] == "tool"),
    ({"failure_code": "rate_limited"}, lambda s: bool(s.failure) and s.failure["failure_code"] == "rate_limited"),
    ({"step_name": "billing_api"}, lambda s: "billing_api" in s.step_names()),
    ({"since": (T0 + timedelta(hours=7)).isoformat()}, lambda s: s.started_at >= T0 + timedelta(hours=7)),
    ({"until": "2026-11-20T14:00:00Z"}, lambda s: s.started_at < T0 + timedelta(hours=2)),
    (
        {"agent_id": "support-agent", "environment": "production", "since": "2026-11-20T13:00:00+00:00",
         "until": "2026-11-20T16:00:00"},  # no offset: read as UTC
        lambda s: s.agent_id == "support-agent" and s.environment == "production"
        and T0 + timedelta(hours=1) <= s.started_at < T0 + timedelta(hours=4),
    ),
]


@pytest.mark.parametrize(("params", "keep"), FILTER_CASES, ids=lambda p: "&".join(p) if isinstance(p, dict) else "")
def test_each_filter_narrows_to_exactly_the_matching_runs(
    fleet: Fleet, params: dict[str, str], keep: Callable[[RunSpec], bool]
) -> None:
    r = fleet.get("/v1/runs", limit=500, **params)
    assert r.status_code == 200, r.text
    expected = _newest_first([s for s in fleet.specs if keep(s)])
    assert expected, "a filter case must match something to prove anything"
    assert len(expected) < len(fleet.specs), "a filter case must exclude something"
    assert [item["run_id"] for item in r.json()["items"]] == expected


def test_run_summary_carries_identity_timing_counters_and_failure(fleet: Fleet) -> None:
    spec = fleet.specs[2]  # staging failure with a retried timeout
    params = {"status": "failure", "agent_id": "support-agent", "agent_version": "v1", "environment": "staging"}
    items = fleet.get("/v1/runs", **params).json()["items"]
    assert len(items) == 1
    run = items[0]
    assert run["run_id"] == spec.run_id
    assert (run["agent_id"], run["agent_version"], run["environment"]) == ("support-agent", "v1", "staging")
    assert run["started_at"] == "2026-11-20T14:00:00Z"
    assert run["duration_ms"] == pytest.approx(76.0)
    assert (run["step_count"], run["error_step_count"], run["retry_count"]) == (3, 2, 1)
    assert (run["failure_type"], run["failure_code"]) == ("tool", "timeout")


def test_pages_walk_every_run_once_newest_first(fleet: Fleet) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = fleet.get("/v1/runs", **params).json()
        assert len(body["items"]) <= 3
        seen += [item["run_id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == _newest_first(fleet.specs)
    assert pages == 4  # 10 runs in pages of 3


def test_detail_has_steps_in_seq_order_retries_linked_and_failure_linked_to_its_step(fleet: Fleet) -> None:
    spec = fleet.specs[2]
    r = fleet.get(f"/v1/runs/{spec.run_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run"]["run_id"] == spec.run_id
    assert [s["seq"] for s in body["steps"]] == [1, 2, 3]
    first, retry = body["steps"][1], body["steps"][2]
    assert (first["attempt"], first["retry_of_seq"], first["status"], first["error_class"]) == (
        1, None, "error", "TimeoutError")
    assert (retry["attempt"], retry["retry_of_seq"], retry["failure_code"]) == (2, 2, "timeout")
    assert body["failure"] == {
        "failure_type": "tool",
        "failure_code": "timeout",
        "step_seq": 3,
        "message": "billing API timed out twice",
        "recorded_at": body["failure"]["recorded_at"],
    }
    assert body["failure"]["step_seq"] in {s["seq"] for s in body["steps"]}


def test_detail_of_a_successful_run_has_no_failure_and_keeps_safe_metadata(fleet: Fleet) -> None:
    spec = fleet.specs[0]
    body = fleet.get(f"/v1/runs/{spec.run_id}").json()
    assert body["failure"] is None
    assert body["run"]["meta"] == {"region": "eu"}
    assert body["steps"][1]["meta"] == {"http_status": 200}
    assert [s["step_type"] for s in body["steps"]] == ["plan", "tool", "respond"]


def test_unknown_run_is_a_404_with_a_clear_body(fleet: Fleet) -> None:
    missing = str(uuid.uuid4())
    r = fleet.get(f"/v1/runs/{missing}")
    assert r.status_code == 404
    message = f"no run with run_id {missing}"
    assert r.json() == {"error": "not_found", "field": "run_id", "rule": "must name a stored run", "message": message,
                        "detail": message}


def test_agents_lists_versions_environments_counts_and_last_seen(fleet: Fleet) -> None:
    r = fleet.get("/v1/agents")
    assert r.status_code == 200, r.text
    agents = {a["agent_id"]: a for a in r.json()["items"]}
    assert list(agents) == ["search-agent", "support-agent"]  # newest last_seen first
    support = agents["support-agent"]
    assert support["run_count"] == 6
    assert support["last_seen"] == "2026-11-20T17:00:00Z"
    assert [(v["agent_version"], v["run_count"]) for v in support["versions"]] == [("v2", 3), ("v1", 3)]
    assert {e["environment"]: e["run_count"] for e in support["environments"]} == {"production": 4, "staging": 2}
    search = agents["search-agent"]
    assert search["run_count"] == 4
    assert search["versions"] == [{"agent_version": "v1", "run_count": 4, "last_seen": "2026-11-20T21:00:00Z"}]


def test_health_reports_the_database_reachable(fleet: Fleet) -> None:
    r = fleet.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["database"] == "ok"


BAD_FILTERS: list[tuple[str, dict[str, str], str]] = [
    ("/v1/runs", {"status": "exploded"}, "status"),
    ("/v1/runs", {"failure_type": "cosmic"}, "failure_type"),
    ("/v1/runs", {"failure_code": "Not A Code"}, "failure_code"),
    ("/v1/runs", {"since": "yesterday-ish"}, "since"),
    ("/v1/runs", {"since": "2026-11-21T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, "until"),
    ("/v1/runs", {"since": "2026-11-20T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, "until"),
    ("/v1/runs", {"limit": "0"}, "limit"),
    ("/v1/runs", {"limit": "100000"}, "limit"),
    ("/v1/runs", {"cursor": "not-a-cursor!"}, "cursor"),
    ("/v1/runs", {"agent_id": "a" * 500}, "agent_id"),
    ("/v1/runs/not-a-uuid", {}, "run_id"),
]


@pytest.mark.parametrize(
    ("path", "params", "param"), BAD_FILTERS, ids=[f"{c[2]}-{i}" for i, c in enumerate(BAD_FILTERS)]
)
def test_bad_filters_get_422_naming_the_parameter_without_echoing_it(
    fleet: Fleet, path: str, params: dict[str, str], param: str
) -> None:
    r = fleet.get(path, **params)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [err["loc"][-1] for err in detail] == [param]
    assert detail[0]["msg"]
    for value in params.values():
        if len(value) > 3:
            assert value not in r.text


def test_a_cursor_cannot_be_reused_with_other_filters(fleet: Fleet) -> None:
    cursor = fleet.get("/v1/runs", limit=2, agent_id="support-agent").json()["next_cursor"]
    assert cursor
    r = fleet.get("/v1/runs", limit=2, agent_id="search-agent", cursor=cursor)
    assert r.status_code == 422
    assert "different filters" in r.json()["detail"][0]["msg"]


def test_no_route_accepts_a_write_method(fleet: Fleet) -> None:
    schema = fleet.get("/openapi.json").json()
    methods = {m for ops in schema["paths"].values() for m in ops}
    assert methods == {"get"}
    run_id = fleet.specs[0].run_id
    for path in ("/v1/runs", f"/v1/runs/{run_id}", "/v1/agents", "/health"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert httpx.request(method, fleet.url + path, json={}).status_code == 405, (method, path)
    assert fleet.get(f"/v1/runs/{run_id}").status_code == 200


def test_openapi_has_a_summary_and_a_clean_operation_id_on_every_route(fleet: Fleet) -> None:
    schema = fleet.get("/openapi.json").json()
    ops = {path: op["get"] for path, op in schema["paths"].items()}
    assert {path: op["operationId"] for path, op in ops.items()} == {
        "/v1/runs": "list_runs",
        "/v1/runs/{run_id}": "get_run",
        "/v1/agents": "list_agents",
        "/v1/projects": "list_projects",
        "/health": "health",
    } | {p: ops[p]["operationId"] for p in ops if p in ("/v1/stats", "/v1/compare")}
    for path, op in ops.items():
        assert op.get("summary"), path
    assert {"RunSummary", "RunDetail", "RunPage", "StepOut", "FailureOut", "AgentOut"} <= set(
        schema["components"]["schemas"]
    )
    assert fleet.get("/docs").status_code == 200


def test_cors_lets_the_dashboard_read_with_an_authorization_header(fleet: Fleet) -> None:
    origin = "http://localhost:3000"
    pre = httpx.options(
        fleet.url + "/v1/runs",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"},
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == origin
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    assert fleet.get("/v1/runs").status_code == 200
    other = httpx.get(fleet.url + "/v1/runs", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_pagination_is_stable_when_runs_arrive_between_pages(live_ingest: str, live_query: str) -> None:
    url = live_query
    same_time = T0 + timedelta(hours=3)
    initial = [RunSpec("a", "v1", "prod", T0 + timedelta(hours=i), "success") for i in range(5)]
    initial += [RunSpec("a", "v1", "prod", same_time, "success") for _ in range(3)]  # ties on started_at
    ingest_runs(live_ingest, initial)
    seen: list[str] = []
    cursor = None
    for page in range(100):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = httpx.get(url + "/v1/runs", params=params).json()
        seen += [item["run_id"] for item in body["items"]]
        # New runs keep arriving while the caller pages: newer ones must not appear, nor shift the pages.
        ingest_runs(live_ingest, [RunSpec("a", "v1", "prod", T0 + timedelta(days=1, minutes=page), "success")])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == _newest_first(initial)
    assert len(set(seen)) == len(seen) == 8


WRITES = [
    "DELETE FROM runs",
    "UPDATE runs SET status = 'success'",
    "INSERT INTO failures (run_id, failure_type, failure_code, recorded_at) VALUES ('x', 'tool', 'x', '2026-01-01')",
    "CREATE TABLE sneaky (id INTEGER)",
]


@pytest.mark.parametrize("statement", WRITES, ids=lambda s: s.split()[0].lower())
def test_the_query_engine_refuses_writes_on_the_real_database(db_url: str, statement: str) -> None:
    spec = RunSpec("a", "v1", "prod", T0, "success")
    writer = make_engine(db_url, poolclass=sa.pool.NullPool)
    insert_runs(writer, [spec])
    app = create_app(Settings(database_url=db_url))
    engine: sa.Engine = app.state.store.engine
    with pytest.raises(sa.exc.DBAPIError) as info, engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert "read" in str(info.value).lower()  # "readonly database" / "read-only transaction"
    engine.dispose()
    with writer.connect() as conn:
        assert conn.execute(sa.text("SELECT run_id, status FROM runs")).all() == [(spec.run_id, "success")]
    writer.dispose()


def test_health_is_503_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{(tmp_path / 'absent' / 'none.db').as_posix()}"))
    with serve(app) as url:
        r = httpx.get(url + "/health")
    assert r.status_code == 503
    assert r.json()["database"] == "unreachable"
    assert r.headers["retry-after"] == "2"
    assert "absent" not in r.text  # no paths or URLs leak


def test_health_is_503_when_postgresql_is_down() -> None:
    # Port 1 on loopback: nothing listens, so the connection is refused at once.
    app = create_app(Settings(database_url="postgresql://postgres:hunter2@127.0.0.1:1/test"))
    with serve(app) as url:
        r = httpx.get(url + "/health")
    assert r.status_code == 503
    assert r.json()["database"] == "unreachable" and r.json()["backend"] == "postgresql"
    assert "hunter2" not in r.text and "127.0.0.1:1" not in r.text


def test_every_v1_route_demands_a_read_key_once_keys_exist(db_url: str) -> None:
    writer = make_engine(db_url, poolclass=sa.pool.NullPool)
    spec = RunSpec("a", "v1", "prod", T0, "success")
    insert_runs(writer, [spec])
    _, read_key = create_key(writer, "read", "query-test")
    _, ingest_key = create_key(writer, "ingest", "query-test")
    writer.dispose()
    app = create_app(Settings(database_url=db_url))
    # Taken from the app itself, so routes added later (stats, compare) are covered too.
    paths = [p.replace("{run_id}", spec.run_id) for p in app.openapi()["paths"] if p.startswith("/v1/")]
    assert {"/v1/runs", "/v1/agents", f"/v1/runs/{spec.run_id}"} <= set(paths)
    with serve(app) as url:
        for path in paths:
            assert httpx.get(url + path).status_code == 401, path
            assert httpx.get(url + path, headers={"Authorization": f"Bearer {ingest_key}"}).status_code == 403, path
            ok = httpx.get(url + path, headers={"Authorization": f"Bearer {read_key}"}, params=_required(path))
            assert ok.status_code != 401 and ok.status_code != 403, path
        assert httpx.get(url + f"/v1/runs/{spec.run_id}", headers={"X-API-Key": read_key}).status_code == 200
        assert httpx.get(url + "/health").status_code == 200  # probes need no key


def _required(path: str) -> dict[str, str]:
    # /v1/compare needs its own parameters; any answer but 401/403 proves the key was accepted.
    return {"agent_id": "a", "base": "v1", "candidate": "v2"} if path == "/v1/compare" else {}


def test_a_database_outage_is_a_503_with_retry_after_not_a_500(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{(tmp_path / 'gone' / 'none.db').as_posix()}"))
    with serve(app) as url:
        for path in ("/v1/runs", "/v1/agents", f"/v1/runs/{uuid.uuid4()}"):
            r = httpx.get(url + path)
            assert r.status_code == 503, (path, r.text)
            assert r.headers["retry-after"] == "2"
            assert r.json()["detail"].startswith("the database is unavailable")
            assert "gone" not in r.text
