"""The project line, attacked from both sides, over real HTTP on SQLite, PostgreSQL and ClickHouse (chdb).

Two projects, ``alpha`` and ``beta``, with keys bound to each. Reads: every GET operation of the Query
API and every one of its parameters is taken from the app's own OpenAPI description (a new endpoint or
parameter is probed without touching this file; a new parameter nobody gave a probe value fails the
test). For alpha's read key each answer — status, body, counts, cursors, errors — must be exactly the
answer it gets once beta has been deleted, so beta's runs change nothing alpha can see, and no answer
may contain anything of beta's. Writes: alpha's ingest key cannot write into beta or change any of
beta's runs through ``/v1/ingest`` or ``/v1/traces``, including by reusing beta's run and trace ids.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from agenttracer.server import ingest, query
from agenttracer.server.settings import Settings
from agenttracer.store.filters import RunFilters
from agenttracer.store.interface import Store
from tests.support.servers import serve_app
from tests.support.stored import stored_run, stored_steps

NOW = datetime.now(timezone.utc).replace(microsecond=0)
T0 = NOW - timedelta(hours=2)
SINCE = (T0 - timedelta(hours=1)).isoformat()
UNTIL = (NOW + timedelta(hours=1)).isoformat()
# Words only beta's data holds: none may appear in an answer to alpha's key.
BETA_WORDS = ("beta-secret", "beta-step", "beta_code", "beta-otel")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def sdk_run(run_id: str, agent: str, version: str, start: datetime, *, step: str, code: str | None) -> list[dict]:
    ident = {"run_id": run_id, "agent_id": agent, "agent_version": version, "environment": "prod"}
    end = start + timedelta(milliseconds=40)
    events: list[dict[str, Any]] = [
        {"type": "run_start", **ident, "started_at": start.isoformat()},
        {"type": "step", "run_id": run_id, "seq": 1, "step_type": "tool", "name": step,
         "started_at": start.isoformat(), "ended_at": (start + timedelta(milliseconds=30)).isoformat(),
         "latency_ms": 30.0, "status": "error" if code else "ok", "attempt": 1,
         **({"error_class": "TimeoutError", "failure_code": code} if code else {})},
    ]
    if code:
        events.append({"type": "failure", "run_id": run_id, "failure_type": "tool", "failure_code": code,
                       "step_seq": 1, "recorded_at": end.isoformat()})
    events.append({"type": "run_end", **ident, "ended_at": end.isoformat(), "status": "failure" if code else "success"})
    return events


def otlp_body(trace_hex: str, service: str, start: datetime, project: str | None = None) -> dict[str, Any]:
    """One OTLP/JSON trace: an agent root span and a tool span under it."""
    ns = int(start.timestamp() * 1e9)
    attrs = [{"key": "service.name", "value": {"stringValue": service}}]
    if project is not None:
        attrs.append({"key": "agenttracer.project", "value": {"stringValue": project}})
    root, child = uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]

    def span(span_id: str, parent: str | None, name: str, op: str, offset_ms: int) -> dict[str, Any]:
        return {
            "traceId": trace_hex, "spanId": span_id, **({"parentSpanId": parent} if parent else {}), "name": name,
            "kind": 1, "startTimeUnixNano": str(ns + offset_ms * 1_000_000),
            "endTimeUnixNano": str(ns + (offset_ms + 20) * 1_000_000),
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": op}}],
        }

    return {"resourceSpans": [{"resource": {"attributes": attrs}, "scopeSpans": [{"spans": [
        span(root, None, "agent", "invoke_agent", 0), span(child, root, "tool-call", "execute_tool", 5)]}]}]}


def trace_run_id(trace_hex: str) -> str:
    return str(uuid.UUID(trace_hex))


@dataclass
class World:
    ingest: str
    query: str
    keys: dict[str, str]
    alpha_runs: list[str]
    beta_runs: list[str]
    beta_trace: str
    store: Store


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of tests/support/servers.py on every store."""
    return Settings(database_url=store_url)


@pytest.fixture
def world(live_settings: Settings, store: Store) -> Iterator[World]:
    store.create_project("alpha")
    store.create_project("beta")
    keys = {
        "ingest_alpha": store.create_key("ingest", projects=["alpha"])[1],
        "ingest_beta": store.create_key("ingest", projects=["beta"])[1],
        "read_alpha": store.create_key("read", projects=["alpha"])[1],
        "read_beta": store.create_key("read", projects=["beta"])[1],
        "read_both": store.create_key("read", projects=["alpha", "beta"])[1],
        "admin": store.create_key("read", admin=True)[1],
    }
    settings = dataclasses.replace(live_settings, cursor_secret="projects-isolation-test")
    with ExitStack() as stack:
        w = World(
            ingest=stack.enter_context(serve_app(ingest.create_app(settings))),
            query=stack.enter_context(serve_app(query.create_app(settings))),
            keys=keys, alpha_runs=[], beta_runs=[], beta_trace=uuid.uuid4().hex, store=store,
        )
        alpha: list[dict[str, Any]] = []
        beta: list[dict[str, Any]] = []
        for i in range(4):
            start = T0 + timedelta(minutes=i)
            a, b = str(uuid.uuid4()), str(uuid.uuid4())
            w.alpha_runs.append(a)
            w.beta_runs.append(b)
            version = "v1" if i % 2 else "v2"
            alpha += sdk_run(a, "shared", version, start, step="lookup", code="timeout" if i == 0 else None)
            # beta shares alpha's agent and version names, so counts would show any leak.
            beta += sdk_run(b, "shared" if i < 2 else "beta-secret", version, start + timedelta(seconds=1),
                            step="beta-step", code="beta_code" if i < 3 else None)
        for key, events in (("ingest_alpha", alpha), ("ingest_beta", beta)):
            r = httpx.post(f"{w.ingest}/v1/ingest", json={"events": events}, headers=bearer(keys[key]))
            assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
        r = httpx.post(f"{w.ingest}/v1/traces", json=otlp_body(w.beta_trace, "beta-otel", T0),
                       headers=bearer(keys["ingest_beta"]))
        assert r.status_code == 200 and "rejected" not in r.text.lower(), r.text
        yield w


# --- reads -------------------------------------------------------------------------------------------

# Values each parameter is probed with (alpha's, beta's and neither's); a parameter missing here fails
# test_every_parameter_has_probe_values, so a new one is thought about before it ships.
PROBES: dict[str, list[Any]] = {
    "project": ["alpha", "beta", "nope"],
    "agent_id": ["shared", "beta-secret"],
    "agent_version": ["v1", "v2"],
    "environment": ["prod", "test"],
    "status": ["success", "failure", "running"],
    "failure_type": ["tool", "orchestration"],
    "failure_code": ["timeout", "beta_code"],
    "step_name": ["lookup", "beta-step"],
    "since": [SINCE],
    "until": [UNTIL],
    "limit": [1, 50],
    "steps_after": [0, 1],
    "steps_limit": [1],
    "base": ["v1"],
    "candidate": ["v2"],
    "cursor": [],  # filled from live answers (see _cursor_probes)
}
REQUIRED_BASE = {"agent_id": "shared", "base": "v1", "candidate": "v2", "since": SINCE, "until": UNTIL}


def _operations(w: World) -> list[tuple[str, list[dict[str, Any]]]]:
    schema = httpx.get(f"{w.query}/openapi.json").json()
    return [(path, ops["get"].get("parameters", [])) for path, ops in schema["paths"].items()
            if path.startswith("/v1/") and "get" in ops]


def _requests(w: World, cursors: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every (url, params) to ask: each operation bare, then with each parameter at each probe value."""
    out: list[tuple[str, dict[str, Any]]] = []
    # Whole ids, and the start of one (the run detail takes a prefix that begins exactly one run's id).
    run_ids = [w.alpha_runs[0], w.beta_runs[0], trace_run_id(w.beta_trace), str(uuid.uuid4()),
               w.alpha_runs[0][:8], w.beta_runs[0][:8]]
    for path, params in _operations(w):
        query_names = [p["name"] for p in params if p["in"] == "query"]
        base = {n: v for n, v in REQUIRED_BASE.items() if n in query_names}
        paths = [path.replace("{run_id}", r) for r in run_ids] if "{run_id}" in path else [path]
        for url in paths:
            out.append((url, base))
            for name in query_names:
                values = cursors if name == "cursor" else PROBES[name]
                out += [(url, {**base, name: value}) for value in values]
    return out


def _ask(w: World, key: str, requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, Any]]:
    answers = []
    with httpx.Client(base_url=w.query, headers=bearer(w.keys[key]), timeout=30) as client:
        for url, params in requests:
            r = client.get(url, params=params)
            assert r.status_code < 500, (url, params, r.text)
            body = r.json()
            if isinstance(body, dict):
                body.pop("generated_at", None)  # the clock, not the data
            answers.append((r.status_code, body))
    return answers


def _cursor_probes(w: World) -> list[str]:
    """A next_cursor minted for each reader: alpha's own, beta's, and one over both projects."""
    out = []
    for key in ("read_alpha", "read_beta", "read_both"):
        r = httpx.get(f"{w.query}/v1/runs", params={"limit": 1}, headers=bearer(w.keys[key]))
        out.append(r.json()["next_cursor"])
    return out


def test_every_parameter_has_probe_values(world: World) -> None:
    for path, params in _operations(world):
        for p in params:
            if p["in"] == "query":
                assert p["name"] in PROBES, f"{path}: give parameter {p['name']!r} probe values in PROBES"
            else:
                assert p["name"] == "run_id", f"{path}: a new path parameter {p['name']!r} needs probes"


@pytest.mark.slow
def test_alpha_reader_sees_exactly_what_it_would_see_if_beta_did_not_exist(world: World) -> None:
    w = world
    beta_ids = [*w.beta_runs, trace_run_id(w.beta_trace)]
    requests = _requests(w, _cursor_probes(w))
    assert len(requests) > 80  # every operation, every parameter: not a handful of hand-picked calls
    before = _ask(w, "read_alpha", requests)
    for (url, params), (_status, body) in zip(requests, before, strict=True):
        text = json.dumps(body)
        for secret in (*BETA_WORDS, *beta_ids):
            if secret in url or secret in json.dumps(params):
                continue  # the request itself named it (a 404 names the run id asked for)
            assert secret not in text, (url, params, secret)
    # Beta gone (its runs, its keys): alpha's key must get the very same answers.
    assert w.store.delete_project("beta") is not None
    after = _ask(w, "read_alpha", requests)
    for request, one, other in zip(requests, before, after, strict=True):
        if one != other and isinstance(one[1], dict):
            diff = {k: (one[1].get(k), other[1].get(k)) for k in one[1] if one[1].get(k) != other[1].get(k)}
            raise AssertionError((request, diff))
        assert one == other, request


def test_another_projects_run_is_a_404_like_a_missing_one(world: World) -> None:
    w = world
    missing = str(uuid.uuid4())
    answers = {}
    for run_id in (w.beta_runs[0], trace_run_id(w.beta_trace), missing, w.beta_runs[0][:8]):
        r = httpx.get(f"{w.query}/v1/runs/{run_id}", headers=bearer(w.keys["read_alpha"]))
        answers[run_id] = (r.status_code, r.json()["error"], r.json()["rule"], r.json()["field"])
    assert set(answers.values()) == {(404, "not_found", "must name a stored run", "run_id")}
    r = httpx.get(f"{w.query}/v1/runs/{w.beta_runs[0]}", headers=bearer(w.keys["read_beta"]))
    assert r.status_code == 200 and r.json()["run"]["project"] == "beta"


def test_a_project_outside_the_key_is_refused_the_same_whether_it_exists_or_not(world: World) -> None:
    w = world
    answers = [
        httpx.get(f"{w.query}/v1/runs", params={"project": p}, headers=bearer(w.keys["read_alpha"]))
        for p in ("beta", "no-such-project")
    ]
    assert [a.status_code for a in answers] == [403, 403]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["field"] == "project"


def test_cursors_do_not_cross_the_line(world: World) -> None:
    w = world
    alpha_cursor, beta_cursor, both_cursor = _cursor_probes(w)
    for cursor in (beta_cursor, both_cursor):
        r = httpx.get(f"{w.query}/v1/runs", params={"cursor": cursor}, headers=bearer(w.keys["read_alpha"]))
        assert r.status_code == 422 and r.json()["field"] == "cursor"
    r = httpx.get(f"{w.query}/v1/runs", params={"cursor": alpha_cursor}, headers=bearer(w.keys["read_alpha"]))
    assert r.status_code == 200 and all(run["project"] == "alpha" for run in r.json()["items"])


def test_keys_list_their_projects_and_an_admin_or_multi_project_key_reads_over_them(world: World) -> None:
    w = world

    def get(key: str, path: str, **params: Any) -> Any:
        r = httpx.get(f"{w.query}{path}", params=params, headers=bearer(w.keys[key]))
        assert r.status_code == 200, r.text
        return r.json()

    assert [p["slug"] for p in get("read_alpha", "/v1/projects")["items"]] == ["alpha"]
    assert [p["slug"] for p in get("read_both", "/v1/projects")["items"]] == ["alpha", "beta"]
    assert [p["slug"] for p in get("admin", "/v1/projects")["items"]] == ["alpha", "beta", "default"]
    every = {r["run_id"]: r["project"] for r in get("admin", "/v1/runs", limit=100)["items"]}
    assert len(every) == 9 and set(every.values()) == {"alpha", "beta"}
    # Stats over a multi-project key sum its projects; the project parameter narrows to one.
    window = {"since": SINCE, "until": UNTIL}
    total = get("read_both", "/v1/stats", **window)["total_runs"]
    parts = [get("read_both", "/v1/stats", project=p, **window)["total_runs"] for p in ("alpha", "beta")]
    assert parts == [4, 5] and total == 9
    assert get("read_alpha", "/v1/stats", **window)["total_runs"] == 4


# --- writes ------------------------------------------------------------------------------------------


def _snapshot(w: World, run_id: str) -> tuple[Any, ...]:
    """The run's stored row and steps, every column (a refused write must change none)."""
    return stored_run(w.store, run_id), stored_steps(w.store, run_id)


def _count(w: World, project: str) -> int:
    with w.store.reader() as reader:
        found, _cursor = reader.list_runs(RunFilters(projects=(project,)), limit=1000)
    return len(found)


def test_an_ingest_key_naming_another_project_is_refused_and_stores_nothing(world: World) -> None:
    w = world
    run_id = str(uuid.uuid4())
    events = sdk_run(run_id, "intruder", "v1", T0, step="x", code=None)
    key = bearer(w.keys["ingest_alpha"])
    counts = (_count(w, "alpha"), _count(w, "beta"))
    refused = [
        httpx.post(f"{w.ingest}/v1/ingest", json={"events": events, "project": "beta"}, headers=key),
        httpx.post(f"{w.ingest}/v1/ingest", json={"events": events}, headers={**key, "X-AgentTracer-Project": "beta"}),
        httpx.post(f"{w.ingest}/v1/traces", json=otlp_body(uuid.uuid4().hex, "intruder", T0, project="beta"),
                   headers=key),
        httpx.post(f"{w.ingest}/v1/traces", json=otlp_body(uuid.uuid4().hex, "intruder", T0),
                   headers={**key, "X-AgentTracer-Project": "beta"}),
    ]
    assert [r.status_code for r in refused] == [403] * 4, [r.text for r in refused]
    assert all(r.json()["error"] == "wrong_project" for r in refused[:2])
    assert (_count(w, "alpha"), _count(w, "beta")) == counts
    # Naming its own project is fine.
    ok = httpx.post(f"{w.ingest}/v1/ingest", json={"events": events, "project": "alpha"}, headers=key)
    assert ok.status_code == 200 and ok.json()["accepted"] == len(events)


def test_reusing_another_projects_run_id_changes_nothing_there(world: World) -> None:
    w = world
    target = w.beta_runs[3]  # a success: a failure or a new end would change it
    before = _snapshot(w, target)
    events = sdk_run(target, "shared", "v1", T0 + timedelta(seconds=5), step="lookup", code="timeout")
    events.append({"type": "step", "run_id": target, "seq": 2, "step_type": "llm", "name": "extra",
                   "started_at": T0.isoformat(), "ended_at": T0.isoformat(), "latency_ms": 0.0, "status": "ok",
                   "attempt": 1})
    r = httpx.post(f"{w.ingest}/v1/ingest", json={"events": events}, headers=bearer(w.keys["ingest_alpha"]))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["rejected"] == len(events)
    assert {e["field"] for res in body["results"] for e in res["errors"]} == {"run_id"}
    # OTLP: alpha's key sending spans into beta's trace, and into beta's SDK run's id as a trace id.
    for trace in (w.beta_trace, uuid.UUID(target).hex):
        r = httpx.post(f"{w.ingest}/v1/traces", json=otlp_body(trace, "intruder", T0 + timedelta(minutes=9)),
                       headers=bearer(w.keys["ingest_alpha"]))
        assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedSpans"] in (2, "2"), r.text
    assert _snapshot(w, target) == before
    otel_before = _snapshot(w, trace_run_id(w.beta_trace))
    assert otel_before[0]["project"] == "beta" and otel_before[0]["agent_id"] != "intruder"
    assert _count(w, "alpha") == 4


def test_without_keys_the_request_names_the_project(live_settings: Settings, store: Store) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(serve_app(ingest.create_app(live_settings)))
        made = {}
        for how in ("body", "header", "none", "otlp", "otlp-header"):
            run_id = str(uuid.uuid4())
            events = sdk_run(run_id, "local", "v1", T0, step="s", code=None)
            if how == "body":
                r = httpx.post(f"{url}/v1/ingest", json={"events": events, "project": "team-a"})
            elif how == "header":
                r = httpx.post(f"{url}/v1/ingest", json={"events": events}, headers={"X-AgentTracer-Project": "team-b"})
            elif how == "none":
                r = httpx.post(f"{url}/v1/ingest", json={"events": events})
            else:
                trace = uuid.uuid4().hex
                run_id = trace_run_id(trace)
                headers = {"X-AgentTracer-Project": "team-b"} if how == "otlp-header" else {}
                r = httpx.post(f"{url}/v1/traces", json=otlp_body(trace, "svc", T0, project="team-c"
                                                                  if how == "otlp" else None), headers=headers)
            assert r.status_code == 200, r.text
            made[how] = run_id
        bad = [
            httpx.post(f"{url}/v1/ingest", json={"events": sdk_run(str(uuid.uuid4()), "x", "v1", T0, step="s",
                                                                    code=None), "project": "Not A Slug"}),
            httpx.post(f"{url}/v1/ingest", json={"events": sdk_run(str(uuid.uuid4()), "x", "v1", T0, step="s",
                                                                    code=None), "project": "a"},
                       headers={"X-AgentTracer-Project": "b"}),
            httpx.post(f"{url}/v1/traces", json=otlp_body(uuid.uuid4().hex, "svc", T0, project="-bad")),
        ]
        assert [r.status_code for r in bad] == [422, 422, 400]
        assert bad[0].json()["field"] == "project" and bad[1].json()["error"] == "conflicting_project"
    assert [stored_run(store, made[h])["project"] for h in ("body", "header", "none", "otlp", "otlp-header")] == [
        "team-a", "team-b", "default", "team-c", "team-b"]
