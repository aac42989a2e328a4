"""The background passes (``store/sql/periodic.py``: the rollup refreshers, retention, the abandoned-run sweep)
while the database is broken under them: one summary line per failing pass, backed off, and never a stored
value in the log.

The database is broken the ways it breaks in production: its connections killed from the server side
(``pg_terminate_backend``) and a database that refuses writes (a read-only PostgreSQL session, SQLite
with ``query_only``). Canary values planted as agent ids, versions, environments and run ids must
appear in no log line: SQLAlchemy puts a failed statement's bound parameters into its error text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.periodic import MAX_BACKOFF_S, PeriodicWorker
from agenttracer.store.sql.rollup.live import RollupWorker
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.write.abandon import AbandonWorker
from agenttracer.store.sql.write.retention import RetentionWorker
from agenttracer.store.sql.write.writer import write_batch
from tests.support.db import pg_base_url
from tests.support.incoming import incoming

CANARIES = ("canary-agent-51d7", "canary-ver-51d7", "canary-env-51d7", "c0ffee51-d7d7-4d7d-8d7d-51d751d751d7")
APP_NAME = "at-periodic-log-test"
BROKEN_FOR_S = 4.0
TICK_S = 0.1


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _plant(engine: sa.Engine) -> None:
    """A live run (the live refresher's work) and a 3-day-old one (retention's), both made of canaries."""
    now = datetime.now(timezone.utc)
    agent, version, env, old_run = CANARIES
    events: list[dict[str, Any]] = []
    for run_id, start in (("c0ffee51-0000-4000-8000-000000000001", now - timedelta(seconds=30)),
                          (old_run, now - timedelta(days=3))):
        ident = {"run_id": run_id, "agent_id": agent, "agent_version": version, "environment": env}
        events += [
            {"type": "run_start", **ident, "started_at": _iso(start)},
            {"type": "step", "run_id": run_id, "seq": 1, "step_type": "tool", "name": "canary-step-51d7",
             "started_at": _iso(start), "ended_at": _iso(start + timedelta(seconds=1)), "latency_ms": 1000.0,
             "status": "error", "error_class": "CanaryError51d7", "failure_code": "canary_code_51d7"},
            {"type": "run_end", **ident, "ended_at": _iso(start + timedelta(seconds=2)), "status": "failure"},
        ]
    items = incoming(events, now)
    assert all(o.status == "accepted" for o in write_batch(engine, items, now=now))


def _broken_engine(backend: str, db_url: str) -> sa.Engine:
    """An engine whose every session refuses writes (a standby, a read-only mount), tagged for the killer."""
    if backend == "postgresql":
        options = f"-c default_transaction_read_only=on -c application_name={APP_NAME}"
        url = db_url.replace("options=-csearch_path", f"options={options.replace(' ', '%20')}%20-csearch_path")
        return make_engine(url)
    engine = make_engine(db_url)

    @sa.event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA query_only = ON")

    return engine


@pytest.fixture
def killer(backend: str) -> Iterator[None]:
    """On PostgreSQL: terminate the workers' connections from the server side every 50 ms."""
    if backend != "postgresql":
        yield
        return
    stop = threading.Event()
    admin = make_engine(pg_base_url(), poolclass=sa.pool.NullPool)

    def kill() -> None:
        while not stop.wait(0.05):
            with admin.begin() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": APP_NAME})

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)
    admin.dispose()


@pytest.mark.slow
def test_failing_passes_log_one_line_each_backed_off_and_no_stored_value(
    backend: str, db_url: str, killer: None, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(db_url)
    _plant(engine)
    engine.dispose()
    broken = _broken_engine(backend, db_url)
    workers: list[PeriodicWorker[Any]] = [
        RollupWorker(broken, interval_s=TICK_S, live_interval_s=TICK_S, first_delay_s=0),
        RetentionWorker(broken, 1, interval_s=TICK_S, first_delay_s=0),
        AbandonWorker(broken, 1, interval_s=TICK_S, first_delay_s=0),  # fails only when its connection is killed
    ]
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.DEBUG, logger="agenttracer")
    for worker in workers:
        worker.start()
    time.sleep(BROKEN_FOR_S)
    for worker in workers:
        worker.stop()
    broken.dispose()

    text = caplog.text
    for canary in CANARIES:
        assert canary not in text
    assert "Traceback" not in text and "[parameters" not in text
    failed = [r for r in caplog.records if "pass failed" in r.getMessage()]
    assert failed, "the broken database never failed a pass"
    for worker in workers[:2]:
        assert worker.failures > 0
    # With the back-off doubling from TICK_S, each worker fails at most ~log2(BROKEN_FOR_S / TICK_S) + 1
    # passes in BROKEN_FOR_S; without it, one per tick (~40).
    assert len(failed) <= len(workers) * 7
    assert all(len(r.getMessage().splitlines()) == 1 and r.exc_info is None for r in caplog.records)


def test_backoff_doubles_from_the_interval_up_to_the_cap() -> None:
    class Failing(PeriodicWorker[None]):
        def _pass(self) -> None:
            raise sa.exc.OperationalError("UPDATE runs SET agent_id=?", ("secret-value",), Exception("boom"))

    worker = Failing(interval_s=2.0, first_delay_s=0)
    waits = []
    for _ in range(8):
        worker.run_guarded()
        waits.append(worker.backoff_s())
    assert waits == [4.0, 8.0, 16.0, 32.0, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]
    slow = Failing(interval_s=3600.0, first_delay_s=0)
    slow.run_guarded()
    assert slow.backoff_s() == 3600.0  # a pass scheduled rarely keeps its own interval


def test_a_pass_that_succeeds_again_resets_the_backoff_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    outcomes = [True, True, False]

    class Flaky(PeriodicWorker[None]):
        thread_name = "flaky"

        def _pass(self) -> None:
            if outcomes.pop(0):
                raise OSError("disk full at /secret/path")

    worker = Flaky(interval_s=1.0, first_delay_s=0)
    caplog.set_level(logging.INFO, logger="agenttracer")
    for _ in range(3):
        worker.run_guarded()
    assert worker.failures == 0 and worker.backoff_s() == 1.0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and "succeeded after 2 failed passes" in lines[-1]
    assert not any("/secret/path" in line for line in lines)
