"""`agenttracer projects …` and `agenttracer keys create --project/--admin`: what an operator types, on both
databases. Deleting a project takes its runs and nobody else's; retention is per project."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from typer.testing import CliRunner

from agenttracer.cli import app
from agenttracer.store.keys import KeyStatus
from agenttracer.store.sql.keys import verify_key
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.tables import failures, runs, steps
from agenttracer.store.sql.write.retention import RetentionWorker

runner = CliRunner()
NOW = datetime.now(timezone.utc)


def cli(*args: str, url: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--database-url", url])
    return result.exit_code, result.stdout, result.stderr


def add_run(engine: sa.Engine, project: str, started: datetime) -> str:
    run_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(runs.insert().values(
            run_id=run_id, project=project, agent_id="a", agent_version="v1", environment="prod",
            status="failure", started_at=started, ingested_at=started, updated_at=started, step_count=1))
        conn.execute(steps.insert().values(
            run_id=run_id, seq=1, step_type="tool", name="s", status="error", started_at=started,
            ended_at=started, latency_ms=1.0))
        conn.execute(failures.insert().values(
            run_id=run_id, failure_type="tool", failure_code="timeout", step_seq=1, recorded_at=started))
    return run_id


def by_project(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(runs.c.project, sa.func.count()).group_by(runs.c.project)).all()
        orphans = conn.execute(
            sa.select(sa.func.count()).select_from(steps).where(~steps.c.run_id.in_(sa.select(runs.c.run_id)))
        ).scalar_one()
    assert orphans == 0
    return dict(rows)


def test_create_list_and_bind_keys(db_url: str) -> None:
    assert cli("projects", "create", "payments", "--retention-days", "30", url=db_url)[0] == 0
    assert cli("projects", "create", "support", url=db_url)[0] == 0
    code, _, err = cli("projects", "create", "payments", url=db_url)
    assert code == 2 and "exists already" in err
    code, _, err = cli("projects", "create", "Bad_Slug", url=db_url)
    assert code == 2 and "slug" in err
    code, out, _ = cli("projects", "list", url=db_url)
    assert code == 0 and "payments" in out and "30 d" in out and "support" in out and "default" in out

    code, key, err = cli("keys", "create", "--scope", "ingest", "--project", "payments", url=db_url)
    assert code == 0 and "project payments" in err
    code, read, _ = cli("keys", "create", "--scope", "read", "--project", "payments", "--project", "support",
                        url=db_url)
    assert code == 0
    code, admin, err = cli("keys", "create", "--scope", "read", "--admin", url=db_url)
    assert code == 0 and "every project" in err
    refusals = [
        cli("keys", "create", "--scope", "ingest", "--project", "payments", "--project", "support", url=db_url),
        cli("keys", "create", "--scope", "ingest", "--admin", url=db_url),
        cli("keys", "create", "--scope", "read", "--project", "nowhere", url=db_url),
    ]
    assert [r[0] for r in refusals] == [2, 2, 2]
    assert "exactly one project" in refusals[0][2] and "only a read key" in refusals[1][2]
    assert "no such project" in refusals[2][2]
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        infos = [verify_key(conn, k.strip()).key for k in (key, read, admin)]
    engine.dispose()
    assert [(i.projects, i.admin) for i in infos if i] == [
        (("payments",), False), (("payments", "support"), False), ((), True)]
    code, out, _ = cli("keys", "list", url=db_url)
    assert "payments,support" in out and "(admin: all)" in out


def test_delete_takes_the_projects_runs_and_keys_and_nothing_else(db_url: str) -> None:
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    cli("projects", "create", "gone", url=db_url)
    cli("projects", "create", "kept", url=db_url)
    for i in range(7):
        add_run(engine, "gone", NOW - timedelta(minutes=i))
        add_run(engine, "kept", NOW - timedelta(minutes=i))
    _, only_gone, _ = cli("keys", "create", "--scope", "read", "--project", "gone", url=db_url)
    _, both, _ = cli("keys", "create", "--scope", "read", "--project", "gone", "--project", "kept", url=db_url)
    code, _, err = cli("projects", "delete", "gone", url=db_url)
    assert code == 2 and "--yes" in err and by_project(engine)["gone"] == 7
    code, _, err = cli("projects", "delete", "gone", "--yes", url=db_url)
    assert code == 0 and "7 runs" in err and "1 keys revoked" in err
    assert by_project(engine) == {"kept": 7}
    with engine.connect() as conn:
        assert verify_key(conn, only_gone.strip()).status is KeyStatus.REVOKED
        still = verify_key(conn, both.strip())
    assert still.status is KeyStatus.VALID and still.key is not None and still.key.projects == ("kept",)
    assert cli("projects", "delete", "gone", "--yes", url=db_url)[0] == 1
    engine.dispose()


def test_retention_is_per_project_with_the_deployment_default_behind_it(engine: sa.Engine, db_url: str) -> None:
    cli("projects", "create", "short", "--retention-days", "2", url=db_url)
    cli("projects", "create", "long", "--retention-days", "400", url=db_url)
    old = NOW - timedelta(days=10)
    for project in ("short", "long", "default"):
        add_run(engine, project, old)
        add_run(engine, project, NOW - timedelta(hours=1))
    # No deployment retention: only "short" has a limit.
    assert RetentionWorker(engine, None)._pass().runs == 1
    assert by_project(engine) == {"short": 1, "long": 2, "default": 2}
    # The deployment's 5 days apply to projects without their own ("default"), not to "long".
    assert RetentionWorker(engine, 5)._pass().runs == 1
    assert by_project(engine) == {"short": 1, "long": 2, "default": 1}
    assert cli("projects", "retention", "long", "--retention-days", "3", url=db_url)[0] == 0
    assert RetentionWorker(engine, 5)._pass().runs == 1
    assert by_project(engine) == {"short": 1, "long": 1, "default": 1}
