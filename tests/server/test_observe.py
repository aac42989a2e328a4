"""Request ids and the per-request log line, on the real apps over real HTTP, in both log formats.

A valid ``X-Request-ID`` is echoed and logged; an invalid or sensitive one is replaced, never echoed
or logged; the line each request ends with names the route template and the batch's counts, and no
format ever carries content or a rejected value.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agenttracer.server import ingest, query
from agenttracer.server.logs import configure_logging
from agenttracer.server.observe import MAX_REQUEST_ID_LEN, request_id
from agenttracer.server.settings import Settings
from tests.support import events as ev
from tests.support.servers import serve_app

EMAIL = "dana.smith@example.com"
PROMPT = "tell me everything about my diagnosis"
SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"


@pytest.fixture
def log_lines(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(logging.INFO, request.param, stream)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


def test_request_ids_are_kept_only_when_safe() -> None:
    assert request_id(b"req-42.a:b_C") == "req-42.a:b_C"
    generated = {request_id(raw) for raw in (None, b"", b"has space", b"x" * (MAX_REQUEST_ID_LEN + 1),
                                              EMAIL.encode(), SECRET.encode(), "caf\u00e9".encode())}
    assert len(generated) == 7
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in generated)


@pytest.mark.parametrize("log_lines", ["json"], indirect=True)
def test_json_lines_carry_the_request_and_its_counts(live_settings: Settings, log_lines: io.StringIO) -> None:
    run_id = ev.new_run_id()
    batch = [ev.run_start(run_id), ev.step(run_id, 1, metadata={"prompt": PROMPT}),
             ev.run_start(ev.new_run_id(), agent_id=EMAIL)]
    with serve_app(ingest.create_app(live_settings)) as base:
        response = httpx.post(f"{base}/v1/ingest", json={"events": batch}, headers={"X-Request-ID": "trace-7"},
                              timeout=30)
        other = httpx.post(f"{base}/v1/ingest", json={"events": batch[:1]}, headers={"X-Request-ID": SECRET},
                           timeout=30)
    assert response.headers["x-request-id"] == "trace-7"
    generated = other.headers["x-request-id"]
    assert generated != SECRET and len(generated) == 32

    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    requests = [line for line in lines if line["logger"] == "agenttracer.access"]
    assert len(requests) == 2
    first = requests[0]
    assert set(first) >= {"time", "level", "logger", "event", "request_id", "route", "status", "duration_ms", "counts"}
    assert first["time"].endswith("+00:00") and first["level"] == "info" and first["event"] == "request"
    assert first["request_id"] == "trace-7" and first["route"] == "/v1/ingest" and first["status"] == 200
    assert first["counts"] == {"accepted": 2, "duplicates": 0, "rejected": 1, "removed": 1}
    assert requests[1]["request_id"] == generated
    text = log_lines.getvalue()
    for value in (PROMPT, EMAIL, SECRET):
        assert value not in text


@pytest.mark.parametrize("log_lines", ["text"], indirect=True)
def test_text_lines_keep_todays_shape_with_the_fields_appended(live_settings: Settings, log_lines: io.StringIO) -> None:
    with serve_app(ingest.create_app(live_settings)) as base:
        httpx.post(f"{base}/v1/ingest", json={"events": ev.full_run()}, headers={"X-Request-ID": "abc"}, timeout=30)
        httpx.get(f"{base}/health", timeout=10)  # DEBUG: not in an INFO log
    lines = [line for line in log_lines.getvalue().splitlines() if "agenttracer.access" in line]
    assert len(lines) == 1
    assert " INFO    agenttracer.access: request request_id=abc method=POST route=/v1/ingest status=200 " in lines[0]
    assert "accepted=5" in lines[0]


@pytest.mark.parametrize("log_lines", ["json"], indirect=True)
@pytest.mark.parametrize("app", ["ingest", "query"])
def test_each_request_is_one_line_and_one_count(app: str, live_settings: Settings, log_lines: io.StringIO) -> None:
    create_app = ingest.create_app if app == "ingest" else query.create_app
    route = "/v1/ingest" if app == "ingest" else "/v1/runs"
    with serve_app(create_app(live_settings)) as base:
        if app == "ingest":
            httpx.post(f"{base}{route}", json={"events": ev.full_run()}, headers={"X-Request-ID": "once"}, timeout=30)
        else:
            httpx.get(f"{base}{route}", headers={"X-Request-ID": "once"}, timeout=30)
        scrape = httpx.get(f"{base}/metrics", timeout=10).text
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert [line["request_id"] for line in lines if line["logger"] == "agenttracer.access"] == ["once"]
    counted = [line for line in scrape.splitlines()
               if line.startswith("agenttracer_http_requests_total{") and f'route="{route}"' in line]
    assert len(counted) == 1 and counted[0].endswith(" 1.0"), counted


@pytest.mark.parametrize("log_lines", ["json"], indirect=True)
def test_records_logged_while_serving_carry_the_request_id(log_lines: io.StringIO, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-database"
    blocked.mkdir()  # SQLite cannot open a directory: the health check logs a warning
    with serve_app(ingest.create_app(Settings(database_url=f"sqlite:///{blocked.as_posix()}"))) as base:
        httpx.get(f"{base}/health", headers={"X-Request-ID": "probe-1"}, timeout=10)
    warnings = [json.loads(line) for line in log_lines.getvalue().splitlines() if '"warning"' in line]
    assert any(w["logger"] == "agenttracer.ingest" and w["request_id"] == "probe-1" for w in warnings)


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging(logging.INFO, "xml")
