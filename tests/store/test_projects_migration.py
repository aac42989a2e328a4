"""Migration 0005 on a database at the previous head, on SQLite and PostgreSQL: every run (with its steps
and failure) is kept and is now in ``default``; an existing key is bound to ``default`` and keeps
reading what it read; the Query API answers a single-project user as the same rows written today."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import sqlalchemy as sa

from agenttracer.server import query
from agenttracer.server.settings import Settings
from agenttracer.store.keys import hash_key
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import current_revision, downgrade, head_revision, upgrade
from tests.support.servers import serve_app

START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
KEY = "at_read_" + "k" * 43


def _fill(conn: sa.Connection, ids: list[str]) -> None:
    """Runs, steps, failures and a read key written with the previous head's columns only (timestamps in
    each database's stored form: naive UTC text on SQLite, as the writer stores them)."""
    sqlite = conn.dialect.name == "sqlite"

    def ts(value: datetime) -> Any:
        return value.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else value

    for i, run_id in enumerate(ids):
        t = START + timedelta(minutes=i)
        failed = i % 4 == 0
        conn.execute(sa.text(
            "INSERT INTO runs (run_id, agent_id, agent_version, environment, status, started_at, ended_at,"
            " duration_ms, step_count, error_step_count, retry_count, failure_type, failure_code, meta,"
            " meta_removed, ingested_at, updated_at) VALUES (:r, 'old-agent', :v, 'prod', :s, :t, :e, 50.0,"
            " 2, :err, 0, :ft, :fc, '{}', 0, :t, :t)"),
            {"r": run_id, "v": "v1" if i % 2 else "v2", "s": "failure" if failed else "success", "t": ts(t),
             "e": ts(t + timedelta(milliseconds=50)), "err": 1 if failed else 0, "ft": "tool" if failed else None,
             "fc": "timeout" if failed else None})
        for seq in (1, 2):
            conn.execute(sa.text(
                "INSERT INTO steps (run_id, seq, step_type, name, status, started_at, ended_at, latency_ms,"
                " attempt, meta, meta_removed) VALUES (:r, :q, 'tool', 'lookup', :st, :t, :t, 20.0, 1, '{}', 0)"),
                {"r": run_id, "q": seq, "st": "error" if failed and seq == 2 else "ok", "t": ts(t)})
        if failed:
            conn.execute(sa.text(
                "INSERT INTO failures (run_id, failure_type, failure_code, step_seq, recorded_at)"
                " VALUES (:r, 'tool', 'timeout', 2, :t)"), {"r": run_id, "t": ts(t)})
    conn.execute(sa.text(
        "INSERT INTO api_keys (key_id, scope, prefix, key_hash, last4, created_at)"
        " VALUES ('key_old', 'read', 'at_read_', :h, 'kkkk', :t)"), {"h": hash_key(KEY), "t": ts(START)})


def _answers(url: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    window = {"since": (START - timedelta(hours=1)).isoformat(), "until": (START + timedelta(hours=2)).isoformat()}
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        out["runs"] = client.get("/v1/runs", params={"limit": 5}).json()
        first = out["runs"]["items"][0]["run_id"]
        out["detail"] = client.get(f"/v1/runs/{first}").json()
        out["agents"] = client.get("/v1/agents").json()
        for path, params in (("/v1/stats", window),
                             ("/v1/compare", {"agent_id": "old-agent", "base": "v1", "candidate": "v2", **window})):
            body = client.get(path, params=params).json()
            body.pop("generated_at", None)
            out[path] = body
        out["projects"] = [p["slug"] for p in client.get("/v1/projects").json()["items"]]
    return out


def test_a_database_at_the_previous_head_keeps_every_run_in_default(empty_db_url: str, tmp_path: Any) -> None:
    engine = make_engine(empty_db_url)
    upgrade(engine, "0004")
    ids = [str(uuid.uuid4()) for _ in range(12)]
    with engine.begin() as conn:
        _fill(conn, ids)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT run_id, project FROM runs")).all())
        step_count = conn.execute(sa.text("SELECT count(*) FROM steps")).scalar_one()
        failure_count = conn.execute(sa.text("SELECT count(*) FROM failures")).scalar_one()
        bound = conn.execute(sa.text("SELECT key_id, project FROM api_key_projects")).all()
    assert stored == dict.fromkeys(ids, "default")
    assert (step_count, failure_count) == (24, 3)
    assert [tuple(row) for row in bound] == [("key_old", "default")]

    settings = dataclasses.replace(Settings(database_url=empty_db_url), cursor_secret="migration-test")
    with serve_app(query.create_app(settings)) as url:
        migrated = _answers(url)
    assert migrated["projects"] == ["default"]
    assert [r["run_id"] for r in migrated["runs"]["items"]] == ids[::-1][:5]
    assert migrated["/v1/stats"]["total_runs"] == 12 and migrated["/v1/stats"]["failure_rate"] == 0.25
    engine.dispose()

    # The same rows written at today's head (into default, as every write without a project is) answer
    # exactly the same: the migration changed nothing a single-project user sees.
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    fresh = make_engine(fresh_url)
    upgrade(fresh)
    with fresh.begin() as conn:
        _fill(conn, ids)
        conn.execute(sa.text("INSERT INTO api_key_projects (key_id, project) VALUES ('key_old', 'default')"))
    fresh.dispose()
    with serve_app(query.create_app(dataclasses.replace(settings, database_url=fresh_url))) as url:
        today = _answers(url)
    assert today == migrated



def test_sqlite_migrations_that_copy_runs_keep_its_steps_both_ways(tmp_path: Any) -> None:
    """SQLite alters ``runs`` by copying it; with foreign keys on, dropping the old table cascaded into
    steps and failures (every step was lost by an upgrade that added a column to runs)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'copy.db'}")
    upgrade(engine, "0004")
    with engine.begin() as conn:
        _fill(conn, [str(uuid.uuid4()) for _ in range(12)])
    upgrade(engine)
    downgrade(engine, "0004")
    with engine.connect() as conn:
        counts = [conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("runs", "steps", "failures")]
        assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar_one() == 1
    assert counts == [12, 24, 3]
    engine.dispose()
