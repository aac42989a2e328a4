"""An unexpected server error is a well-formed answer: a JSON 500 with ``Connection: close`` through a
real uvicorn server, after which a pooled client's next request works (no connection reset); and on
ingest, an event the database refuses for an unforeseen reason is rejected alone, the rest stored."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from agenttracer.server import ingest, query
from agenttracer.server.failsafe import describe_exception
from agenttracer.server.settings import Settings
from agenttracer.store.sql.schema.engine import make_engine
from tests.support.events import new_run_id, run_end, run_start, step
from tests.support.servers import serve_app

SECRET = "user said: my card is 4111 1111 1111 1111"


def _boom() -> None:
    raise RuntimeError(SECRET)


@pytest.mark.parametrize("make_app", [query.create_app, ingest.create_app], ids=["query", "ingest"])
def test_after_an_unhandled_error_a_pooled_client_keeps_working(
    make_app: Any, live_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(live_settings)
    app.add_api_route("/boom", _boom)
    caplog.set_level(logging.ERROR, logger="agenttracer.server")
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/health").status_code == 200
        for _ in range(3):
            resp = client.get("/boom")
            # The very next request on the same pool succeeds (before: ECONNRESET on a reused socket).
            assert client.get("/health").status_code == 200
            assert resp.status_code == 500
            assert resp.headers["connection"] == "close"
            assert resp.json()["error"] == "internal_error"
    logged = caplog.text
    assert "RuntimeError at test_failsafe.py" in logged
    assert SECRET not in logged  # the message can quote content: never logged


def test_describe_exception_names_class_and_place_only() -> None:
    try:
        _boom()
    except RuntimeError as exc:
        text = describe_exception(exc)
    assert text.startswith("RuntimeError at test_failsafe.py:")
    assert "4111" not in text


_TRIGGERS = {
    "postgresql": [
        """CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
           BEGIN IF NEW.name = 'poison_step' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END
           $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER refuse_poison BEFORE INSERT ON steps FOR EACH ROW EXECUTE FUNCTION refuse_poison()""",
    ],
    "sqlite": [
        """CREATE TRIGGER refuse_poison BEFORE INSERT ON steps WHEN NEW.name = 'poison_step'
           BEGIN SELECT RAISE(ABORT, 'refused'); END""",
    ],
}


def test_an_event_the_database_refuses_is_rejected_alone(live_settings: Settings, db_url: str) -> None:
    # A real database error nobody foresaw (a trigger refuses one step): the batch must not answer 500
    # nor lose its other events.
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for sql in _TRIGGERS[engine.dialect.name]:
            conn.exec_driver_sql(sql)
    good, other = new_run_id(), new_run_id()
    events = [
        run_start(good),
        step(good, 1),
        step(good, 2, name="poison_step"),
        step(good, 3),
        run_end(good),
        run_start(other),
    ]
    with serve_app(ingest.create_app(live_settings)) as url:
        resp = httpx.post(f"{url}/v1/ingest", json={"events": events}, timeout=60)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted", "rejected", "accepted", "accepted", "accepted"]
    assert results[2]["errors"][0]["code"] == "internal_error"
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM steps ORDER BY seq")).scalars().all()
        run = conn.execute(sa.text("SELECT status, step_count FROM runs WHERE run_id = :r"), {"r": good}).one()
    engine.dispose()
    assert names == ["step_1", "step_3"]
    assert tuple(run) == ("success", 2)
