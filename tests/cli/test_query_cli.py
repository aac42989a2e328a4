"""The CLI's read commands run for real against a real Query API server on loopback.

The CLI speaks HTTP only, so one backend (SQLite) is enough here; the server tests cover both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from agenttracer.cli import app
from agenttracer.cli.query import _retrying
from agenttracer.cli.query_client import QueryError
from agenttracer.server import ingest
from agenttracer.server import query as query_module
from agenttracer.server.settings import Settings
from agenttracer.store.sql.keys import create_key
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from tests.support.analytics_data import scenario, served_scenario
from tests.support.rundata import RunSpec, StepSpec, ingest_runs, sample_runs
from tests.support.servers import serve_app as serve


@dataclass
class Server:
    url: str
    ingest_url: str  # to add runs while a command runs
    specs: list[RunSpec]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Ingest and Query APIs on one database, loaded with the sample fleet through the Ingest API."""
    db_url = f"sqlite:///{(tmp_path_factory.mktemp('cli') / 'at.db').as_posix()}"
    upgrade(make_engine(db_url, poolclass=sa.pool.NullPool))
    settings = Settings(database_url=db_url)
    specs = sample_runs()
    with serve(ingest.create_app(settings)) as ingest_url, serve(query_module.create_app(settings)) as url:
        ingest_runs(ingest_url, specs)
        yield Server(url, ingest_url, specs)


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result


def test_runs_prints_a_table_of_every_run(server: Server) -> None:
    result = cli("runs", "--url", server.url)
    assert result.exit_code == 0, result.output
    for spec in server.specs:
        assert spec.run_id in result.output
    assert "tool/timeout" in result.output


def test_runs_filters_like_the_api_and_json_is_the_api_page(server: Server) -> None:
    result = cli("runs", "--url", server.url, "--status", "failure", "--agent", "support-agent", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    api = httpx.get(server.url + "/v1/runs", params={"status": "failure", "agent_id": "support-agent"}).json()
    assert body == api
    assert {r["run_id"] for r in body["items"]} == {
        s.run_id for s in server.specs if s.status == "failure" and s.agent_id == "support-agent"
    }


def test_runs_limit_and_time_filters(server: Server) -> None:
    result = cli("runs", "--url", server.url, "--limit", "3", "--since", "2026-11-20T15:00:00Z", "--json")
    body = json.loads(result.stdout)
    assert [r["started_at"] for r in body["items"]] == [
        "2026-11-20T21:00:00Z", "2026-11-20T20:00:00Z", "2026-11-20T19:00:00Z"]
    assert body["next_cursor"] is not None
    # An age is turned into a time: nothing in the fixed 2026-11-20 fleet started in the last hour.
    recent = cli("runs", "--url", server.url, "--since", "1h")
    assert recent.exit_code == 0
    assert "no runs match" in recent.output


def test_show_draws_the_waterfall_with_linked_retries_and_the_failing_step(server: Server) -> None:
    spec = server.specs[2]
    result = cli("show", spec.run_id, "--url", server.url)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"run {spec.run_id}" in out
    assert "failure tool/timeout at step #3" in out
    lines = {int(line.split()[0]): line for line in out.splitlines() if line[:2].strip().isdigit()}
    assert sorted(lines) == [1, 2, 3]
    assert "retried by #3" in lines[2]
    assert "attempt 2, retries #2" in lines[3] and "caused the run's failure" in lines[3]
    assert "caused" not in lines[1] + lines[2]
    # Bars share one axis: each step's bar starts after the previous one's start.
    starts = [lines[seq].index("█") for seq in (1, 2, 3)]
    assert starts == sorted(starts) and len(set(starts)) == 3


def test_show_json_is_the_api_detail(server: Server) -> None:
    spec = server.specs[0]
    result = cli("show", spec.run_id, "--url", server.url, "--json")
    assert json.loads(result.stdout) == httpx.get(f"{server.url}/v1/runs/{spec.run_id}").json()


def test_show_an_unknown_run_says_so_and_fails(server: Server) -> None:
    missing = str(uuid.uuid4())
    result = cli("show", missing, "--url", server.url)
    assert result.exit_code == 1
    assert f"run {missing} does not exist" in result.stderr


def test_show_a_malformed_id_names_the_rule(server: Server) -> None:
    result = cli("show", "not-a-run", "--url", server.url)
    assert result.exit_code == 1
    assert "run_id: must be a UUID" in result.stderr


def test_bad_filter_is_explained(server: Server) -> None:
    result = cli("runs", "--url", server.url, "--status", "exploded")
    assert result.exit_code == 1
    assert "status:" in result.stderr and "'success'" in result.stderr
    bad_time = cli("runs", "--url", server.url, "--since", "last tuesday")
    assert bad_time.exit_code == 1
    assert "--since: expected an ISO 8601 time" in bad_time.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [["runs"], ["show", str(uuid.uuid4())], ["stats"], ["tail"]])
def test_an_unreachable_server_is_a_clear_error(command: list[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    result = cli(*command, "--url", url)
    assert result.exit_code == 1
    assert f"cannot reach the Query API at {url}" in result.stderr
    assert "Traceback" not in result.output


def test_url_comes_from_the_environment(server: Server) -> None:
    result = cli("runs", "--json", env={"AGENTTRACER_QUERY_URL": server.url})
    assert result.exit_code == 0
    api = httpx.get(server.url + "/v1/runs", params={"limit": 20}).json()
    assert json.loads(result.stdout)["items"] == api["items"]


@pytest.fixture
def keyed_server(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A query server with one read key and one ingest key: auth is on once a key exists."""
    db_url = f"sqlite:///{(tmp_path / 'at.db').as_posix()}"
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    upgrade(engine)
    _, read_key = create_key(engine, "read", "cli-test")
    _, ingest_key = create_key(engine, "ingest", "cli-test")
    engine.dispose()
    with serve(query_module.create_app(Settings(database_url=db_url))) as url:
        yield url, read_key, ingest_key


def test_api_key_is_sent_as_bearer_and_refusals_are_explained(keyed_server: tuple[str, str, str]) -> None:
    url, read_key, ingest_key = keyed_server
    assert cli("runs", "--url", url, "--api-key", read_key).exit_code == 0
    assert cli("runs", "--url", url, env={"AGENTTRACER_API_KEY": read_key}).exit_code == 0
    missing = cli("runs", "--url", url)
    assert missing.exit_code == 1 and "needs an API key" in missing.stderr
    wrong_scope = cli("runs", "--url", url, "--api-key", ingest_key)
    assert wrong_scope.exit_code == 1 and "API key was refused" in wrong_scope.stderr
    unknown = cli("show", str(uuid.uuid4()), "--url", url, "--api-key", "at_read_" + "x" * 43)
    assert unknown.exit_code == 1 and "API key was refused: the API key is not valid" in unknown.stderr
    for result in (wrong_scope, unknown):
        assert ingest_key not in result.output and "x" * 43 not in result.output  # keys are never printed


def test_tail_prints_runs_as_they_finish_and_only_new_ones(server: Server) -> None:
    now = datetime.now(timezone.utc)
    running = RunSpec("tail-agent", "v9", "prod", now, "running", [StepSpec(1, "tool", "t")])
    done = [RunSpec("tail-agent", "v9", "prod", now + timedelta(seconds=i), "success") for i in (1, 2)]

    def produce() -> None:
        time.sleep(0.6)
        ingest_runs(server.ingest_url, [running, done[0]])
        time.sleep(0.4)
        ingest_runs(server.ingest_url, [done[1]])

    producer = threading.Thread(target=produce)
    producer.start()
    result = cli("tail", "--url", server.url, "--interval", "0.2", "--count", "2", "--duration", "20", "--json")
    producer.join()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["run_id"] for r in lines] == [d.run_id for d in done]  # oldest first; not the running one


def test_tail_history_prints_recent_finished_runs_first(server: Server) -> None:
    newest = httpx.get(server.url + "/v1/runs").json()["items"]
    finished = [r["run_id"] for r in newest if r["status"] != "running"][:2]
    result = cli("tail", "--url", server.url, "--history", "2", "--count", "2", "--json")
    assert [json.loads(line)["run_id"] for line in result.stdout.splitlines()] == finished[::-1]


def test_tail_stops_cleanly_on_ctrl_c(server: Server) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttracer", "tail", "--url", server.url, "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 20
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "following runs on …" once the first poll succeeded
        assert "following runs" in line, line
        assert time.monotonic() < deadline
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)  # a bound for a loaded machine, never waited for when all is well
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "stopped" in stderr
    assert "Traceback" not in stderr + stdout


@pytest.fixture(scope="module")
def analytics_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The analytics scenario: v2's tool is 2x slower and fails 3x as often; tiny-agent has 5 runs a side."""
    base, candidate, tiny = scenario()
    with served_scenario("sqlite", tmp_path_factory.mktemp("an"), base + candidate + tiny) as url:
        yield url


def test_stats_shows_outcomes_latency_attribution_and_retries(analytics_server: str) -> None:
    api = httpx.get(analytics_server + "/v1/stats", params={"agent_id": "support-agent"}).json()
    result = cli("stats", "--url", analytics_server, "--agent", "support-agent")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{api['total_runs']} runs ({api['finished_runs']} finished" in out
    assert f"success {api['success_rate'] * 100:.1f}%" in out
    assert "by type: tool " in out and "by code: timeout " in out
    lines = out.split("latency by step type")[1].splitlines()
    rows = {line.split()[0]: line for line in lines[3:3 + len(api["step_types"]) + 1]}
    assert set(rows) == {g["step_type"] for g in api["step_types"]} | {"untraced"}
    tool = next(g for g in api["step_types"] if g["step_type"] == "tool")
    assert f"{tool['share_of_run_time'] * 100:.1f}%" in rows["tool"]
    # The step types' shares and the untraced remainder add up to the runs' time.
    assert f"{api['run_time']['untraced_share'] * 100:.1f}%" in rows["untraced"]
    assert sum(g["share_of_run_time"] for g in api["step_types"]) + api["run_time"]["untraced_share"] == \
        pytest.approx(1.0)
    assert f"retries      {api['retries']['retry_steps']} of {api['retries']['total_steps']} steps" in out
    as_json = cli("stats", "--url", analytics_server, "--agent", "support-agent", "--json")
    body = json.loads(as_json.stdout)
    # Everything but the moments the two requests were answered ("now").
    for doc in (body, api):
        del doc["generated_at"], doc["timeline"]["end"]
    assert body == api


def test_compare_flags_the_slower_failing_version_as_significant(analytics_server: str) -> None:
    result = cli("compare", "support-agent", "v1", "v2", "--url", analytics_server)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "support-agent: v1 → v2" in out
    assert "finished runs: base 100, candidate 100" in out
    tool_row = next(line for line in out.splitlines() if line.strip().startswith("tool "))
    assert tool_row.count("significant (p=") == 2  # latency and error rate
    assert "significant differences:" in out and "step_types.tool.latency_ms" in out
    assert "plan → retrieval → tool → respond" in out


def test_compare_says_when_the_sample_is_too_small(analytics_server: str) -> None:
    result = cli("compare", "tiny-agent", "t1", "t2", "--url", analytics_server)
    assert result.exit_code == 0, result.output
    assert "too few runs to tell: each version needs more finished runs" in result.output
    assert "significant (" not in result.output


def test_compare_json_and_its_errors(analytics_server: str) -> None:
    body = json.loads(cli("compare", "support-agent", "v1", "v2", "--url", analytics_server, "--json").stdout)
    assert body["base"]["version"] == "v1" and "success_rate" in body["significant"]
    same = cli("compare", "support-agent", "v1", "v1", "--url", analytics_server)
    assert same.exit_code == 1 and "candidate: must differ from base" in same.stderr


def test_show_indents_nested_steps_under_their_parent(server: Server) -> None:
    run = RunSpec("nest-agent", "v1", "prod", datetime(2026, 11, 21, tzinfo=timezone.utc), "success", [
        StepSpec(1, "plan", "make_plan", 0, 50),
        StepSpec(2, "llm", "draft_plan", 5, 40, parent_seq=1),
        StepSpec(3, "respond", "reply", 60, 10),
    ])
    ingest_runs(server.ingest_url, [run])
    out = cli("show", run.run_id, "--url", server.url).output
    lines = {int(line.split()[0]): line for line in out.splitlines() if line[:2].strip().isdigit()}
    assert " make_plan " in lines[1] and "   draft_plan " in lines[2] and " reply " in lines[3]
    assert lines[2].index("draft_plan") == lines[1].index("make_plan") + 2


def test_tail_keeps_polling_through_an_outage_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    outcomes: list[Any] = [QueryError("cannot reach the Query API"), QueryError("cannot reach the Query API"), ["ok"]]

    def flaky() -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert _retrying(flaky, 0.01) == ["ok"]
    err = capsys.readouterr().err
    assert err.count("cannot reach the Query API") == 1  # warned once per outage, not per attempt
    assert "reconnected" in err


@pytest.fixture(scope="module")
def long_run(server: Server) -> RunSpec:
    """A run of 1,200 steps: more than one page of the API's largest step page."""
    spec = RunSpec("long-agent", "v1", "production", datetime(2026, 11, 20, 8, tzinfo=timezone.utc), "success",
                   [StepSpec(seq, "tool", f"call_{seq}", offset_ms=seq * 2.0, latency_ms=1.0)
                    for seq in range(1, 1201)])
    ingest_runs(server.ingest_url, [spec])
    return spec


def test_show_pages_through_a_long_run_up_to_the_limit(server: Server, long_run: RunSpec) -> None:
    result = cli("show", long_run.run_id, "--url", server.url, "--json", "--limit", "1100")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [s["seq"] for s in body["steps"]] == list(range(1, 1101))  # two API pages joined
    assert body["next_steps_after"] == 1100
    assert body["run"]["step_count"] == 1200
    tail = json.loads(cli("show", long_run.run_id, "--url", server.url, "--json", "--after", "1150").stdout)
    assert [s["seq"] for s in tail["steps"]] == list(range(1151, 1201))
    assert tail["next_steps_after"] is None


def test_show_says_how_many_steps_it_left_out(server: Server, long_run: RunSpec) -> None:
    result = cli("show", long_run.run_id, "--url", server.url)
    assert result.exit_code == 0, result.output
    assert "call_500" in result.output and "call_501" not in result.output
    assert "showing 500 of 1200 steps; `--after 500`" in " ".join(result.output.split())
