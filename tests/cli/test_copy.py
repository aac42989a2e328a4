"""`agenttracer copy --from URL --to URL`: a round trip SQLite -> PostgreSQL -> SQLite, or through ClickHouse,
answers every Query API request the same, keys keep working, and a copy that does not match says so with
exit code 1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from agenttracer.cli import app
from agenttracer.server import ingest, query
from agenttracer.server.settings import Settings
from agenttracer.store.sql.keys import create_key
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from agenttracer.store.sql.schema.tables import runs
from tests.support.db import drop_chdb_database, drop_pg_schema, new_chdb_url, new_pg_schema_url
from tests.support.rundata import T0, events, ingest_runs, sample_runs
from tests.support.servers import serve_app

runner = CliRunner()


def copy(source: str, destination: str, tmp_path: Path, *extra: str) -> tuple[int, str]:
    state = tmp_path / f"state-{abs(hash((source, destination)))}.json"
    result = runner.invoke(app, ["copy", "--from", source, "--to", destination, "--state", str(state), *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


@pytest.fixture
def pg_url() -> Iterator[str]:
    url, schema = new_pg_schema_url()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


def _filled_sqlite(tmp_path: Path) -> tuple[str, str]:
    """A SQLite store holding the sample fleet in two projects, and an admin read key of it."""
    url = f"sqlite:///{(tmp_path / 'source.db').as_posix()}"
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    upgrade(engine)
    engine.dispose()
    settings = Settings(database_url=url)
    with serve_app(ingest.create_app(settings)) as ingest_url:
        ingest_runs(ingest_url, sample_runs())
        spare = sample_runs()[:3]
        body = {"project": "team-b", "events": [e for spec in spare for e in events(spec)]}
        assert httpx.post(f"{ingest_url}/v1/ingest", json=body, timeout=30).status_code == 200
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    _, key = create_key(engine, "read", admin=True)
    engine.dispose()
    return url, key


def _answers(db_url: str, key: str) -> dict[str, Any]:
    """Every Query API answer over the fleet: run lists (all pages), each run's detail, agents, stats, compare."""
    headers = {"Authorization": f"Bearer {key}"}
    window = {"since": (T0.replace(hour=0)).isoformat(), "until": T0.replace(day=T0.day + 1).isoformat()}
    out: dict[str, Any] = {}
    with serve_app(query.create_app(Settings(database_url=db_url))) as url, \
            httpx.Client(base_url=url, headers=headers, timeout=10) as api:
        for project in ("default", "team-b"):
            pages, cursor = [], None
            while True:
                params = {"project": project, "limit": "4", **({"cursor": cursor} if cursor else {})}
                body = _ok(api.get("/v1/runs", params=params))
                pages.append(body["items"])
                cursor = body.pop("next_cursor")
                if not cursor:
                    break
            out[f"runs/{project}"] = pages
            for run in (r for page in pages for r in page):
                out[f"run/{run['run_id']}"] = _ok(api.get(f"/v1/runs/{run['run_id']}", params={"project": project}))
            agents = _ok(api.get("/v1/agents", params={"project": project}))
            assert agents["next_cursor"] is None  # one page; cursors are sealed per server, so not compared
            out[f"agents/{project}"] = agents
            out[f"stats/{project}"] = _ok(api.get("/v1/stats", params={"project": project, **window}))
        compare = {"agent_id": "support-agent", "base": "v1", "candidate": "v2", **window}
        out["compare"] = _ok(api.get("/v1/compare", params=compare))
    return out


def _ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    body.pop("generated_at", None)  # the clock of the answer, not the data
    return body


@pytest.mark.slow
def test_a_round_trip_sqlite_postgresql_sqlite_answers_every_request_the_same(tmp_path: Path, pg_url: str) -> None:
    source, key = _filled_sqlite(tmp_path)
    back = f"sqlite:///{(tmp_path / 'back.db').as_posix()}"

    code, err = copy(source, pg_url, tmp_path)
    assert code == 0, err
    assert "verified" in err and "13 runs" in err
    code, err = copy(pg_url, back, tmp_path)
    assert code == 0, err

    expected = _answers(source, key)
    assert len(expected["runs/default"]) == 3 and len(expected["runs/team-b"][0]) == 3
    assert _answers(pg_url, key) == expected  # the key's hash travelled too: the same key reads each copy
    assert _answers(back, key) == expected


@pytest.mark.slow
def test_a_round_trip_through_clickhouse_answers_every_request_the_same(tmp_path: Path) -> None:
    source, key = _filled_sqlite(tmp_path)
    clickhouse = new_chdb_url()
    back = f"sqlite:///{(tmp_path / 'back.db').as_posix()}"
    try:
        code, err = copy(source, clickhouse, tmp_path)
        assert code == 0, err
        assert "verified" in err
        code, err = copy(clickhouse, back, tmp_path)
        assert code == 0, err
    finally:
        drop_chdb_database(clickhouse)
    assert _answers(back, key) == _answers(source, key)


def test_copying_again_stores_nothing_twice(tmp_path: Path) -> None:
    source, _ = _filled_sqlite(tmp_path)
    destination = f"sqlite:///{(tmp_path / 'dest.db').as_posix()}"
    assert copy(source, destination, tmp_path)[0] == 0
    code, err = copy(source, destination, tmp_path)
    assert code == 0, err
    assert "stored 0 runs and 0 steps; 13 runs were there already" in err


def test_a_destination_that_differs_exits_1_naming_the_project_and_count(tmp_path: Path) -> None:
    source, _ = _filled_sqlite(tmp_path)
    destination = f"sqlite:///{(tmp_path / 'dest.db').as_posix()}"
    assert copy(source, destination, tmp_path)[0] == 0
    engine = make_engine(destination, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:  # one run lost on the way
        victim = conn.execute(sa.select(runs.c.run_id).where(runs.c.project == "team-b").limit(1)).scalar_one()
        conn.execute(runs.delete().where(runs.c.run_id == victim))
    engine.dispose()

    code, err = copy(source, destination, tmp_path, "--sample", "0")
    assert code == 0, err  # the copy puts the lost run back
    engine = make_engine(destination, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(runs.delete().where(runs.c.run_id == victim))
    engine.dispose()
    # Copied the other way, the destination (now the source) lacks the run: the check names it.
    code, err = copy(destination, source, tmp_path)
    assert code == 1
    assert "project team-b" in err and "runs: 2 -> 3" in err


def test_the_same_url_on_both_sides_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'x.db').as_posix()}"
    code, err = copy(url, url, tmp_path)
    assert code == 2 and "same store" in err
