"""`agenttracer keys …`, `agenttracer prune` and `agenttracer rollup refresh`: what an operator types, on both
databases (prune by project on every store)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from agenttracer.cli import app
from agenttracer.cli.admin import parse_age
from agenttracer.server.ingest.events import convert_event
from agenttracer.store import open_store
from agenttracer.store.keys import KeyStatus
from agenttracer.store.sql.keys import verify_key
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.tables import rollup_runs, runs, steps
from tests.support.events import run_end, run_start, step
from tests.support.stored import table_counts

runner = CliRunner()


def cli(*args: str, url: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--database-url", url])
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_key_once_on_stdout_and_list_masks_it(db_url: str) -> None:
    code, out, err = cli("keys", "create", "--scope", "ingest", "--name", "ci", url=db_url)
    assert code == 0, err
    key = out.strip()
    assert key.startswith("at_ingest_") and "\n" not in key
    assert "only time" in err and key not in err

    code, out, _ = cli("keys", "list", url=db_url)
    assert code == 0
    assert key not in out and f"at_ingest_…{key[-4:]}" in out and "ci" in out


def test_revoke_by_id_stops_the_key(db_url: str) -> None:
    _, key, _ = cli("keys", "create", "--scope", "read", url=db_url)
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        key_id = verify_key(conn, key.strip()).key.key_id  # type: ignore[union-attr]
    code, _, err = cli("keys", "revoke", key_id, url=db_url)
    assert code == 0 and f"revoked {key_id}" in err
    with engine.connect() as conn:
        assert verify_key(conn, key.strip()).status is KeyStatus.REVOKED
    engine.dispose()
    code, _, err = cli("keys", "revoke", "key_missing", url=db_url)
    assert code == 1 and "no key with id 'key_missing'" in err


def test_bad_scope_is_a_clear_error(db_url: str) -> None:
    code, _, err = cli("keys", "create", "--scope", "admin", url=db_url)
    assert code == 2 and "--scope must be one of: ingest, read" in err


def test_an_unmigrated_database_says_to_migrate(empty_db_url: str) -> None:
    code, _, err = cli("keys", "list", url=empty_db_url)
    assert code == 2 and "agenttracer migrate" in err


def test_prune_dry_run_then_for_real(db_url: str) -> None:
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        for age_days in (45, 40, 2):
            run_id = str(uuid.uuid4())
            t = now - timedelta(days=age_days)
            conn.execute(runs.insert().values(run_id=run_id, started_at=t, ingested_at=t, updated_at=t))
            conn.execute(steps.insert().values(run_id=run_id, seq=1, step_type="plan", name="p", status="ok",
                                               started_at=t, ended_at=t, latency_ms=1.0))
    code, out, _ = cli("prune", "--older-than", "30d", "--dry-run", url=db_url)
    assert code == 0 and out.startswith("would delete 2 runs, 2 steps, 0 failures")
    code, out, _ = cli("prune", "--older-than", "30d", url=db_url)
    assert code == 0 and out.startswith("deleted 2 runs, 2 steps, 0 failures")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one() == 1
    engine.dispose()


def test_prune_of_one_project_leaves_the_others_on_every_store(store_url: str) -> None:
    store = open_store(store_url)
    now = datetime.now(timezone.utc)
    try:
        store.create_project("payments")
        for project in ("payments", "default"):
            run_id, started = str(uuid.uuid4()), now - timedelta(days=40)
            at = [(started + timedelta(seconds=k)).isoformat() for k in range(3)]
            items = [convert_event(i, e, now)[1] for i, e in enumerate([
                run_start(run_id, started_at=at[0]), step(run_id, 1, started_at=at[0], ended_at=at[1]),
                run_end(run_id, ended_at=at[2])])]
            store.write_batch([i for i in items if i is not None], now=now, project=project)
        code, out, err = cli("prune", "--older-than", "30d", "--project", "payments", url=store_url)
        assert code == 0, err
        assert out.startswith("deleted 1 runs, 1 steps, 0 failures of project payments that started before")
        assert table_counts(store) == (1, 1, 0)  # default's old run is untouched
        code, _, err = cli("prune", "--older-than", "30d", "--project", "nosuch", url=store_url)
        assert code == 2 and "no project 'nosuch'" in err
        assert table_counts(store) == (1, 1, 0)
    finally:
        store.close()


def test_prune_needs_an_age(db_url: str) -> None:
    code, _, err = cli("prune", url=db_url)
    assert code == 2 and "--older-than 30d" in err
    code, _, err = cli("prune", "--older-than", "soon", url=db_url)
    assert code == 2 and "positive age" in err


def test_rollup_refresh_rolls_up_closed_hours_and_all_rebuilds(db_url: str) -> None:
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    t = datetime(2026, 11, 20, 10, 30, tzinfo=timezone.utc)
    with engine.begin() as conn:
        for i in range(3):
            run_id = str(uuid.uuid4())
            start = t + timedelta(hours=i)
            conn.execute(runs.insert().values(run_id=run_id, agent_id="a", agent_version="1", environment="prod",
                                              status="success", started_at=start, ended_at=start, duration_ms=5.0,
                                              step_count=1, ingested_at=t, updated_at=t))
            conn.execute(steps.insert().values(run_id=run_id, seq=1, step_type="plan", name="p", status="ok",
                                               started_at=start, ended_at=start, latency_ms=1.0))
    code, out, err = cli("rollup", "refresh", url=db_url)
    assert code == 0, err
    assert out.startswith("recomputed 3 hours and 1 days") and out.rstrip().endswith("0 hours still dirty")
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.sum(rollup_runs.c.runs)).where(
            rollup_runs.c.grain == "hour", rollup_runs.c.level == 0)).scalar_one()
    assert total == 3
    code, out, _ = cli("rollup", "refresh", url=db_url)
    assert code == 0 and out.startswith("recomputed 0 hours")
    code, out, _ = cli("rollup", "refresh", "--all", url=db_url)
    assert code == 0 and out.startswith("recomputed 3 hours")
    engine.dispose()


def test_sweep_closes_quiet_running_runs_once(db_url: str) -> None:
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        for quiet_minutes in (90, 120, 5):
            t = now - timedelta(minutes=quiet_minutes)
            conn.execute(runs.insert().values(run_id=str(uuid.uuid4()), started_at=t, ingested_at=t, updated_at=t))
    code, out, _ = cli("sweep", "--timeout-s", "3600", url=db_url)
    assert code == 0 and out.startswith("closed 2 abandoned runs with no event since")
    code, out, _ = cli("sweep", "--timeout-s", "3600", url=db_url)
    assert code == 0 and out.startswith("closed 0 abandoned runs")
    with engine.connect() as conn:
        statuses = sorted(conn.execute(sa.select(runs.c.status, runs.c.failure_code)).all())
    assert [tuple(s) for s in statuses] == [("failure", "abandoned"), ("failure", "abandoned"), ("running", None)]
    engine.dispose()


@pytest.mark.parametrize(("text", "expected"), [
    ("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90)),
    ("7", timedelta(days=7)), (" 2D ", timedelta(days=2)),
])
def test_ages_are_written_with_a_unit(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "0d", "-3d", "3w", "d", "1.5d"])
def test_bad_ages_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="positive age such as 30d"):
        parse_age(text)
