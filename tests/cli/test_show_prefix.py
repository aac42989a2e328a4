"""``agenttracer show`` with the start of a run id, against a real Query API on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from click.testing import Result
from typer.testing import CliRunner

from agenttracer.cli import app
from agenttracer.server import ingest
from agenttracer.server import query as query_module
from agenttracer.server.settings import Settings
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from tests.support import events as ev
from tests.support.servers import serve_app as serve

TWINS = ("0c1d2e3f-0000-4000-8000-00000000000a", "0c1d2e3f-0000-4000-8000-00000000000b")
LONER = "0c1e0000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def query_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db_url = f"sqlite:///{(tmp_path_factory.mktemp('prefix') / 'at.db').as_posix()}"
    upgrade(make_engine(db_url, poolclass=sa.pool.NullPool))
    settings = Settings(database_url=db_url)
    with serve(ingest.create_app(settings)) as ingest_url, serve(query_module.create_app(settings)) as url:
        batch = []
        for run_id in (*TWINS, LONER):
            batch += [ev.run_start(run_id), ev.step(run_id, 1), ev.run_end(run_id, ended_at=ev.ts(2))]
        assert httpx.post(f"{ingest_url}/v1/ingest", json={"events": batch}, timeout=30).status_code == 200
        yield url


def show(*args: str) -> Result:
    return CliRunner().invoke(app, ["show", *args], catch_exceptions=False)


def test_show_takes_the_start_of_a_run_id(query_url: str) -> None:
    result = show("0c1e", "--url", query_url, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run"]["run_id"] == LONER
    result = show("0C1E0000", "--url", query_url)
    assert result.exit_code == 0 and LONER in result.stdout


def test_show_pages_a_prefixed_run_by_its_whole_id(query_url: str) -> None:
    result = show("0c1e", "--url", query_url, "--json", "--limit", "1")
    assert json.loads(result.stdout)["steps"][0]["seq"] == 1


def test_an_ambiguous_prefix_says_how_many_runs_it_starts(query_url: str) -> None:
    result = show("0c1d", "--url", query_url)
    assert result.exit_code == 1
    assert "2 runs have ids beginning with 0c1d" in result.stderr and "give more of the id" in result.stderr


def test_a_prefix_of_no_run_and_a_malformed_one(query_url: str) -> None:
    result = show("0c1f", "--url", query_url)
    assert result.exit_code == 1 and "run 0c1f does not exist" in result.stderr
    result = show("0c1", "--url", query_url)
    assert result.exit_code == 1 and "run_id: must be a UUID, or a prefix" in result.stderr
