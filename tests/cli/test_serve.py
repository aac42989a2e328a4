"""``agenttracer up / serve / migrate``: one process serving every part on real ports, clean
shutdown on SIGTERM, loopback-only unless told otherwise, clear errors instead of tracebacks."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from agenttracer.cli import app
from agenttracer.cli.serve import _check_bind, is_loopback
from agenttracer.server.settings import Settings
from agenttracer.store import open_store
from agenttracer.store.sql.schema.engine import make_engine
from tests.support.events import full_run
from tests.support.servers import free_port

STARTUP_TIMEOUT_S = 30


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}


def _wait_healthy(url: str, proc: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early ({proc.returncode}): {proc.communicate()[1]}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {STARTUP_TIMEOUT_S}s")


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """`serve` and `up` invoked in-process point the root logger at CliRunner's stderr, which is closed
    when the invocation returns; later tests' log records would hit that closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _start(
    spawn: list[subprocess.Popen[str]], cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttracer", *args],
        cwd=cwd,
        env={**_env(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spawn.append(proc)
    return proc


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=STARTUP_TIMEOUT_S)
    return proc.returncode, err


@pytest.mark.parametrize("kind", ["sqlite", "chdb"])
def test_up_serves_ingest_query_and_ui_from_one_process_and_stops_on_sigterm(
    kind: str, tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    ingest, query, ui = free_port(), free_port(), free_port()
    # chdb: one process may open the directory, and `up` is that one process for both APIs.
    db = tmp_path / "data" / ("at.db" if kind == "sqlite" else "chdb")
    url = f"sqlite:///{db}" if kind == "sqlite" else f"chdb://{db}?database=agenttracer"
    # Ports are fixed up front (not 0) so that the test knows where to knock.
    proc = _start(
        spawn, tmp_path, "up", "--ingest-port", str(ingest), "--query-port", str(query), "--ui-port", str(ui),
        "--database-url", url,
    )
    assert _wait_healthy(f"http://127.0.0.1:{ingest}/health", proc).json()["database"] == "ok"
    assert _wait_healthy(f"http://127.0.0.1:{query}/health", proc).status_code == 200
    page = _wait_healthy(f"http://127.0.0.1:{ui}/", proc)
    # 503 is the dashboard's own "not built yet" page (make test builds it first; a bare checkout may not).
    assert page.status_code in (200, 503) and page.headers["content-type"].startswith("text/html")

    events = full_run(steps=2)
    resp = httpx.post(f"http://127.0.0.1:{ingest}/v1/ingest", json={"events": events}, timeout=10)
    assert resp.json()["accepted"] == 4
    detail = httpx.get(f"http://127.0.0.1:{query}/v1/runs/{events[0]['run_id']}", timeout=10)
    assert [s["seq"] for s in detail.json()["steps"]] == [1, 2]

    code, err = _stop(proc)
    assert code == 0, err
    assert "stopped" in err and "Traceback" not in err
    assert db.is_file() if kind == "sqlite" else db.is_dir()


def test_serve_runs_one_part_alone(tmp_path: Path, spawn: list[subprocess.Popen[str]]) -> None:
    url = f"sqlite:///{tmp_path / 'at.db'}"
    migrated = CliRunner().invoke(app, ["migrate", "--database-url", url])
    assert migrated.exit_code == 0, migrated.output
    port = free_port()
    proc = _start(spawn, tmp_path, "serve", "ingest", "--port", str(port), "--database-url", url)
    assert _wait_healthy(f"http://127.0.0.1:{port}/health", proc).status_code == 200
    code, err = _stop(proc)
    assert code == 0, err


def test_the_ingest_process_keeps_the_rollups_current_and_the_query_api_does_not(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    url = f"sqlite:///{tmp_path / 'at.db'}"
    assert CliRunner().invoke(app, ["migrate", "--database-url", url]).exit_code == 0
    fast = {"AGENTTRACER_ROLLUP_INTERVAL_SECONDS": "1", "AGENTTRACER_ROLLUP_SETTLE_SECONDS": "0"}
    query_port = free_port()
    query = _start(spawn, tmp_path, "serve", "query", "--port", str(query_port), "--database-url", url, env=fast)
    assert _wait_healthy(f"http://127.0.0.1:{query_port}/health", query).status_code == 200
    engine = make_engine(url)
    with engine.connect() as conn:
        # The read-only Query API never refreshes: nothing is rolled up however long it runs.
        time.sleep(2)
        assert conn.execute(sa.text("SELECT rolled_until FROM rollup_state")).scalar() is None
    port = free_port()
    proc = _start(spawn, tmp_path, "serve", "ingest", "--port", str(port), "--database-url", url, env=fast)
    assert _wait_healthy(f"http://127.0.0.1:{port}/health", proc).status_code == 200
    resp = httpx.post(f"http://127.0.0.1:{port}/v1/ingest", json={"events": full_run(steps=2)}, timeout=10)
    assert resp.json()["accepted"] == 4
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    rolled = 0
    while time.monotonic() < deadline and not rolled:  # waits for the outcome; asserts nothing about speed
        with engine.connect() as conn:
            rolled = conn.execute(sa.text("SELECT count(*) FROM rollup_runs")).scalar_one()
            dirty = conn.execute(sa.text("SELECT count(*) FROM rollup_dirty")).scalar_one()
        time.sleep(0.2)
    engine.dispose()
    assert rolled and dirty == 0
    assert _stop(proc)[0] == 0
    assert _stop(query)[0] == 0


def test_up_uses_the_default_sqlite_file_in_the_working_directory(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    ingest = free_port()
    proc = _start(spawn, tmp_path, "up", "--no-ui", "--ingest-port", str(ingest), "--query-port", str(free_port()))
    assert _wait_healthy(f"http://127.0.0.1:{ingest}/health", proc).status_code == 200
    assert _stop(proc)[0] == 0
    assert (tmp_path / ".agenttracer" / "agenttracer.db").is_file()


def test_migrate_brings_an_empty_database_to_head_and_is_repeatable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    first = CliRunner().invoke(app, ["migrate", "--database-url", url])
    assert first.exit_code == 0 and "empty ->" in first.output
    again = CliRunner().invoke(app, ["migrate", "--database-url", url])
    assert again.exit_code == 0 and "already at" in again.output
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 0
    engine.dispose()


@pytest.mark.parametrize("command", [["up"], ["serve", "ingest"], ["serve", "query"]])
def test_a_non_loopback_host_is_refused_while_auth_is_off(tmp_path: Path, command: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    result = CliRunner().invoke(app, [*command, "--host", "0.0.0.0", "--database-url", url], env=_env())
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output and "--insecure-bind" in result.output


def test_insecure_bind_warns_and_auth_on_allows_any_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    _check_bind(Settings(host="0.0.0.0", insecure_bind=True), store)
    assert "authentication OFF" in capsys.readouterr().err
    _check_bind(Settings(host="0.0.0.0", require_auth=True), store)
    assert capsys.readouterr().err == ""
    store.close()


def test_loopback_detection() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.10", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "example.com", ""))


def test_an_unreachable_database_is_a_clear_error_not_a_traceback() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    result = CliRunner().invoke(app, ["up", "--database-url", url], env=_env())
    assert result.exit_code == 1
    assert "cannot migrate postgresql://postgres@127.0.0.1" in result.output and "Connection refused" in result.output
    assert "Traceback" not in result.output


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app,
            ["up", "--no-ui", "--ingest-port", str(port), "--query-port", str(free_port()),
             "--database-url", f"sqlite:///{tmp_path / 'p.db'}"],
            env=_env(),
        )
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_serve_ingest_logs_json_and_reports_its_workers_on_metrics(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    url = f"sqlite:///{tmp_path / 'at.db'}"
    assert CliRunner().invoke(app, ["migrate", "--database-url", url]).exit_code == 0
    env = {"AGENTTRACER_LOG_FORMAT": "json", "AGENTTRACER_RETENTION_DAYS": "30"}
    port = free_port()
    proc = _start(spawn, tmp_path, "serve", "ingest", "--port", str(port), "--database-url", url, env=env)
    base = f"http://127.0.0.1:{port}"
    assert _wait_healthy(f"{base}/health", proc).status_code == 200
    resp = httpx.post(f"{base}/v1/ingest", json={"events": full_run()}, headers={"X-Request-ID": "cli-1"}, timeout=10)
    assert resp.headers["x-request-id"] == "cli-1"
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    # The process's own rollup refresher and retention worker are reported.
    assert "agenttracer_rollup_lag_seconds " in metrics
    assert 'agenttracer_retention_rows_deleted_total{table="runs"}' in metrics
    code, err = _stop(proc)
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["logger"] == "agenttracer.access"]
    assert [(r["request_id"], r["route"], r["status"]) for r in requests] == [("cli-1", "/v1/ingest", 200)]
    assert requests[0]["counts"]["accepted"] == 5


def test_an_unknown_log_format_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'at.db'}"
    result = CliRunner().invoke(app, ["serve", "ingest", "--database-url", url],
                                env={**_env(), "AGENTTRACER_LOG_FORMAT": "xml"})
    assert result.exit_code == 2
    assert "AGENTTRACER_LOG_FORMAT" in result.output and "json" in result.output
