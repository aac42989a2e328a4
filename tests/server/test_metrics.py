"""GET /metrics on the real Ingest and Query APIs, over real HTTP, on SQLite and PostgreSQL.

What a batch does shows up in the series (by type, outcome, reason, agent); route labels are
templates; nothing a client sent that the policy refused reaches a label; /metrics follows the
APIs' auth with a read key; the background workers are reported when scraped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from agenttracer.server import ingest, query
from agenttracer.server.settings import Settings
from agenttracer.store.sql.keys import create_key
from agenttracer.store.sql.rollup.live import RollupWorker
from agenttracer.store.sql.write.retention import RetentionWorker
from tests.support import events as ev
from tests.support.servers import serve_app

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

EMAIL = "carol.jones@example.com"
PROMPT = "please summarise my medical history"
TOKEN = "metrics-scrape-token-7f3c9a"


def scrape(base: str, headers: dict[str, str] | None = None) -> Samples:
    response = httpx.get(f"{base}/metrics", headers=headers or {}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_batch_is_counted_by_type_outcome_reason_and_agent(live_ingest: str) -> None:
    run_id = ev.new_run_id()
    ident = {"agent_id": "billing-bot", "agent_version": "2.1.0", "environment": "prod"}
    batch = [
        ev.run_start(run_id, **ident),
        ev.step(run_id, 1, step_type="llm", latency_ms=1500.0, metadata={"prompt": PROMPT, "http_status": 200}),
        ev.step(run_id, 2, step_type="tool", latency_ms=20.0),
        ev.step(run_id, 2, step_type="tool", latency_ms=20.0),  # an in-batch repeat: duplicate
        ev.failure(run_id, failure_type="tool", failure_code="timeout"),
        ev.run_end(run_id, status="failure", **ident),
        ev.run_start(ev.new_run_id(), agent_id=EMAIL),  # refused identity: rejected
        {"type": "no_such_type"},
    ]
    response = httpx.post(f"{live_ingest}/v1/ingest", json={"events": batch}, timeout=30)
    assert response.status_code == 200
    assert response.json()["accepted"] == 5
    # A replay of the same steps: duplicates of stored rows this time.
    httpx.post(f"{live_ingest}/v1/ingest", json={"events": batch[1:3]}, timeout=30)

    body = httpx.get(f"{live_ingest}/metrics", timeout=10).text
    assert EMAIL not in body and PROMPT not in body and "no_such_type" not in body
    m = scrape(live_ingest)
    events = "agenttracer_ingest_events_total"
    assert value(m, events, type="run_start", outcome="accepted") == 1
    assert value(m, events, type="run_start", outcome="rejected") == 1
    assert value(m, events, type="step", outcome="accepted") == 2
    assert value(m, events, type="step", outcome="duplicate") == 3
    assert value(m, events, type="failure", outcome="accepted") == 1
    assert value(m, events, type="run_end", outcome="accepted") == 1
    assert value(m, events, type="unknown", outcome="rejected") == 1
    assert value(m, "agenttracer_ingest_metadata_removed_total", reason="forbidden_key") == 2
    assert value(m, "agenttracer_ingest_batch_events_count") == 2
    assert value(m, "agenttracer_ingest_batch_events_sum") == len(batch) + 2
    assert value(m, "agenttracer_ingest_commit_seconds_count") == 2
    assert value(m, "agenttracer_http_requests_total", route="/v1/ingest", method="POST", status="200") == 2

    agent = {"project": "default", "agent_id": "billing-bot", "agent_version": "2.1.0"}
    assert value(m, "agenttracer_runs_finished_total", environment="prod", status="failure", **agent) == 1
    assert value(m, "agenttracer_run_failures_total", failure_type="tool", failure_code="timeout", **agent) == 1
    llm = {"step_type": "llm", **agent}
    assert value(m, "agenttracer_step_latency_seconds_count", **llm) == 1
    assert value(m, "agenttracer_step_latency_seconds_sum", **llm) == pytest.approx(1.5)
    assert value(m, "agenttracer_step_latency_seconds_bucket", le="1.0", **llm) == 0
    assert value(m, "agenttracer_step_latency_seconds_bucket", le="2.5", **llm) == 1
    assert value(m, "agenttracer_step_latency_seconds_bucket", le="+Inf", **llm) == 1
    tool = {"step_type": "tool", **agent}
    assert value(m, "agenttracer_step_latency_seconds_bucket", le="0.025", **tool) == 1  # the duplicates are not


def test_steps_before_their_run_start_count_as_unknown_agent(live_ingest: str) -> None:
    run_id = ev.new_run_id()
    httpx.post(f"{live_ingest}/v1/ingest", json={"events": [ev.step(run_id, 1)]}, timeout=30)
    m = scrape(live_ingest)
    labels = {"project": "default", "agent_id": "unknown", "agent_version": "unknown", "step_type": "tool"}
    assert value(m, "agenttracer_step_latency_seconds_count", **labels) == 1


def test_agent_series_carry_the_runs_project(live_ingest: str) -> None:
    run_id = ev.new_run_id()
    ident = {"agent_id": "team-bot", "agent_version": "1", "environment": "prod"}
    events = [ev.run_start(run_id, **ident), ev.step(run_id, 1), ev.run_end(run_id, **ident)]
    r = httpx.post(f"{live_ingest}/v1/ingest", json={"events": events, "project": "payments"}, timeout=30)
    assert r.status_code == 200, r.text
    m = scrape(live_ingest)
    assert value(m, "agenttracer_runs_finished_total", project="payments", status="success", **ident) == 1
    assert value(m, "agenttracer_step_latency_seconds_count", project="payments", agent_id="team-bot",
                 agent_version="1", step_type="tool") == 1


def test_query_routes_are_labelled_by_template_never_by_raw_path(live_query: str) -> None:
    run_id = ev.new_run_id()
    httpx.get(f"{live_query}/v1/runs/{run_id}", timeout=10)
    httpx.get(f"{live_query}/v1/runs", params={"agent": EMAIL}, timeout=10)
    httpx.get(f"{live_query}/no/such/{EMAIL}", timeout=10)
    body = httpx.get(f"{live_query}/metrics", timeout=10).text
    assert run_id not in body and EMAIL not in body
    m = scrape(live_query)
    assert value(m, "agenttracer_http_requests_total", route="/v1/runs/{run_id}", method="GET", status="404") == 1
    assert value(m, "agenttracer_http_request_duration_seconds_count", route="/v1/runs", method="GET") == 1
    assert value(m, "agenttracer_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert not any(name.startswith("agenttracer_ingest_") for name, _ in m)


def test_odd_methods_fold_into_other(live_query: str) -> None:
    httpx.request("BREW", f"{live_query}/health", timeout=10)
    m = scrape(live_query)
    assert value(m, "agenttracer_http_requests_total", route="/health", method="other", status="405") == 1


def test_metrics_need_a_read_key_on_both_apis_when_auth_is_on(live_settings: Settings, engine: sa.Engine) -> None:
    _, read_key = create_key(engine, "read")
    _, ingest_key = create_key(engine, "ingest")
    with ExitStack() as stack:
        for app in (ingest.create_app(live_settings), query.create_app(live_settings)):
            base = stack.enter_context(serve_app(app))
            assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
            wrong = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {ingest_key}"}, timeout=10)
            assert wrong.status_code == 403
            assert scrape(base, {"Authorization": f"Bearer {read_key}"})


def test_metrics_can_be_turned_off(live_settings: Settings) -> None:
    off = dataclasses.replace(live_settings, metrics_enabled=False)
    with serve_app(ingest.create_app(off)) as base:
        response = httpx.post(f"{base}/v1/ingest", json={"events": ev.full_run()}, timeout=30)
        assert response.status_code == 200
        assert response.headers["x-request-id"]
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 404


def test_rate_limited_requests_are_counted(live_settings: Settings) -> None:
    limited = dataclasses.replace(live_settings, rate_limit_per_minute=1)
    with serve_app(ingest.create_app(limited)) as base:
        statuses = [httpx.post(f"{base}/v1/ingest", json={"events": ev.full_run()}, timeout=30).status_code
                    for _ in range(3)]
        assert statuses == [200, 429, 429]
        m = scrape(base)
    assert value(m, "agenttracer_ingest_rate_limited_total") == 2
    assert value(m, "agenttracer_http_requests_total", route="/v1/ingest", method="POST", status="429") == 2


def test_database_errors_are_counted_by_class(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-database"
    blocked.mkdir()  # a directory where the database file should be: SQLite cannot open it
    settings = Settings(database_url=f"sqlite:///{blocked.as_posix()}", metrics_token=TOKEN)
    with serve_app(ingest.create_app(settings)) as base:
        assert httpx.get(f"{base}/health", timeout=10).status_code == 503
        assert httpx.post(f"{base}/v1/ingest", json={"events": ev.full_run()}, timeout=30).status_code == 503
        # The metrics token needs no database: the scrape works while the database is down.
        m = scrape(base, {"Authorization": f"Bearer {TOKEN}"})
    assert value(m, "agenttracer_db_errors_total", error="OperationalError") >= 2


def test_a_metrics_token_is_the_only_way_in_when_set(live_settings: Settings, engine: sa.Engine) -> None:
    _, read_key = create_key(engine, "read")
    with serve_app(query.create_app(dataclasses.replace(live_settings, metrics_token=TOKEN))) as base:
        for headers in ({}, {"Authorization": f"Bearer {read_key}"}, {"Authorization": f"Bearer {TOKEN}x"},
                        {"Authorization": f"Basic {TOKEN}"}):
            response = httpx.get(f"{base}/metrics", headers=headers, timeout=10)
            assert response.status_code == 401
            assert TOKEN not in response.text
        assert scrape(base, {"Authorization": f"Bearer {TOKEN}"})
        # The API itself still takes API keys, not the metrics token.
        assert httpx.get(f"{base}/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 401


@pytest.fixture
def old_run(engine: sa.Engine, live_ingest: str) -> Iterator[str]:
    started = (datetime.now(timezone.utc) - timedelta(days=40)).isoformat()
    run_id = ev.new_run_id()
    batch = [ev.run_start(run_id, started_at=started), ev.step(run_id, 1, started_at=started, ended_at=started)]
    assert httpx.post(f"{live_ingest}/v1/ingest", json={"events": batch}, timeout=30).status_code == 200
    yield run_id


def test_background_workers_are_reported_when_scraped(live_settings: Settings, engine: sa.Engine, old_run: str) -> None:
    app = ingest.create_app(live_settings)
    rollup = RollupWorker(engine)
    retention = RetentionWorker(engine, 30)
    app.state.metrics.watch_workers(rollup=rollup, retention=retention)
    with serve_app(app) as base:
        before = scrape(base)
        assert value(before, "agenttracer_retention_rows_deleted_total", table="runs") == 0
        retention.run_once()
        rollup.caught_up_at -= 600  # as if the refresher had not caught up for ten minutes
        behind = scrape(base)
        rollup.run_once()
        caught_up = scrape(base)
    assert value(behind, "agenttracer_retention_rows_deleted_total", table="runs") == 1
    assert value(behind, "agenttracer_retention_rows_deleted_total", table="steps") == 1
    assert value(behind, "agenttracer_rollup_lag_seconds") >= 600
    assert value(caught_up, "agenttracer_rollup_lag_seconds") < 60
