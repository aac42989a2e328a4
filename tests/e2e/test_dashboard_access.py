"""What the dashboard says when it cannot read: the Query API is down, or it wants a read key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.server import ui
from agenttracer.server.settings import Settings
from agenttracer.store.sql.keys import create_key
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from tests.e2e.conftest import running_up
from tests.e2e.seed import build_fleet, send
from tests.support.browser import screenshot
from tests.support.servers import free_port, serve_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def uncaught(page: Any) -> list[str]:
    return [e for e in page.errors if e.startswith("page error")]


def test_a_down_query_api_gets_a_clear_message(page: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    with serve_app(ui.create_app(Settings(public_query_url=dead))) as ui_url:
        page.goto(ui_url + "/")
        alert = page.get_by_role("alert")
        alert.wait_for()
        text = alert.inner_text()
        assert "The Query API is not reachable" in text
        assert dead in text
        assert page.locator("[data-health=unreachable]").count() == 1
        screenshot(page, "10-query-api-down")
        page.get_by_role("button", name="Try again").click()
        page.get_by_role("alert").wait_for()
    assert uncaught(page) == []


def test_a_401_asks_for_a_read_key_and_sends_it_as_a_bearer_token(tmp_path: Path, page: Any) -> None:
    engine = make_engine(f"sqlite:///{(tmp_path / 'agenttracer.db').as_posix()}", poolclass=sa.pool.NullPool)
    upgrade(engine)
    _, read_key = create_key(engine, "read", "dashboard e2e")
    _, ingest_key = create_key(engine, "ingest", "seed")
    engine.dispose()
    fleet = build_fleet()
    with running_up(tmp_path) as stack:
        send(stack.ingest_url, [fleet.retried], key=ingest_key)
        page.goto(stack.ui_url + "/")
        dialog = page.get_by_role("dialog")
        dialog.wait_for()
        assert "Read key required" in dialog.inner_text()
        screenshot(page, "11-read-key")
        page.get_by_label("Read key", exact=True).fill("at_read_wrong")
        page.get_by_role("button", name="Save key").click()
        page.get_by_text("did not accept the saved key").wait_for()
        page.get_by_label("Read key", exact=True).fill(read_key)
        page.get_by_role("button", name="Save key").click()
        page.locator(f"[data-run-id='{fleet.retried.run_id}']").wait_for()
        assert page.get_by_role("dialog").count() == 0
        page.reload()  # the key is remembered in localStorage
        page.locator(f"[data-run-id='{fleet.retried.run_id}']").wait_for()
        assert page.evaluate("localStorage.getItem('agenttracer.readKey')") == read_key
    assert uncaught(page) == []
