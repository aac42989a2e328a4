"""The Query API's time limit on SQLite, PostgreSQL and ClickHouse (chdb): a read the database works on for longer
than ``query_timeout_ms`` is stopped by the database itself (PostgreSQL ``statement_timeout``, a SQLite progress
handler, ClickHouse ``max_execution_time``) and answered 503 with Retry-After and a body that says why; the
server stays responsive."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from agenttracer.server.query import create_app
from agenttracer.server.settings import Settings
from agenttracer.store.sql.schema.engine import make_engine, timed_out
from tests.support.rundata import T0, RunSpec, StepSpec, insert_runs
from tests.support.servers import serve_app

RUNS = 3_000


def _busy_specs() -> list[RunSpec]:
    return [
        RunSpec(f"agent-{i % 7}", "v1", "prod", T0 + timedelta(seconds=i), "success" if i % 5 else "failure",
                steps=[StepSpec(1, "llm", "gpt", latency_ms=float(i % 900 + 1)),
                       StepSpec(2, "tool", "search", latency_ms=float(i % 300 + 1))])
        for i in range(RUNS)
    ]


@pytest.fixture
def busy_db(db_url: str) -> str:
    """Enough runs that the exact stats path (nothing is rolled up) works for well over a millisecond."""
    insert_runs(db_url, _busy_specs())
    return db_url


@pytest.fixture
def busy_store(store_url: str) -> str:
    """The same runs on every store."""
    insert_runs(store_url, _busy_specs())
    return store_url


def test_a_read_past_the_limit_is_a_503_with_retry_after(busy_store: str) -> None:
    app = create_app(Settings(database_url=busy_store, query_timeout_ms=1))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(2):  # and again: the worker and its pooled connection are fine afterwards
            r = client.get("/v1/stats")
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "2"
            assert "limit of 1 ms" in r.json()["detail"]
            assert "query_timeout_ms" in r.json()["detail"]


def test_the_same_read_within_the_limit_answers(busy_store: str) -> None:
    app = create_app(Settings(database_url=busy_store))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        r = client.get("/v1/stats")
        assert r.status_code == 200, r.text
        assert r.json()["total_runs"] == RUNS


def test_the_engine_raises_an_error_recognised_as_a_timeout(busy_db: str) -> None:
    """SQL stores only: the SQL engine's own statement limit (``make_engine(statement_timeout_ms=...)``) and its
    error classification; on ClickHouse the limit is a setting on each statement (test_query_gate.py)."""
    # 100 ms: far below the 9,000,000-row join below, far above a cheap statement (or the driver's own
    # set-up statements, which the limit covers too on PostgreSQL) even on a busy machine.
    engine = make_engine(busy_db, readonly=True, statement_timeout_ms=100)
    heavy = sa.text("SELECT count(*) FROM runs a, runs b WHERE a.step_count + b.step_count > 3")
    with pytest.raises(sa.exc.DBAPIError) as info, engine.connect() as conn:
        conn.execute(heavy).scalar()
    assert timed_out(info.value)
    # A connection checked out again gets a fresh deadline: a cheap query passes.
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()
