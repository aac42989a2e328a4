"""The dashboard's project switcher in a real browser: it offers only the read key's projects, keeps the
choice in the URL (a shared link opens the same project) and every run shows its project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.sql.keys import create_key
from agenttracer.store.sql.projects import create_project
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from tests.e2e.conftest import running_up
from tests.e2e.seed import build_fleet, send
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_switcher_offers_the_keys_projects_and_the_url_keeps_the_choice(tmp_path: Path, page: Any) -> None:
    engine = make_engine(f"sqlite:///{(tmp_path / 'agenttracer.db').as_posix()}", poolclass=sa.pool.NullPool)
    upgrade(engine)
    for slug in ("payments", "support", "hidden"):
        create_project(engine, slug)
    ingest = {slug: create_key(engine, "ingest", projects=[slug])[1] for slug in ("payments", "support", "hidden")}
    _, read_key = create_key(engine, "read", projects=["payments", "support"])
    engine.dispose()
    fleet = build_fleet()
    pay, sup, hid = fleet.retried, fleet.tool_timeout, fleet.model_failure
    with running_up(tmp_path) as stack:
        send(stack.ingest_url, [pay], key=ingest["payments"])
        send(stack.ingest_url, [sup], key=ingest["support"])
        send(stack.ingest_url, [hid], key=ingest["hidden"])
        page.goto(stack.ui_url + "/")
        page.get_by_role("dialog").wait_for()
        page.get_by_label("Read key", exact=True).fill(read_key)
        page.get_by_role("button", name="Save key").click()
        page.locator(f"[data-run-id='{pay.run_id}']").wait_for()
        page.locator(f"[data-run-id='{sup.run_id}']").wait_for()
        assert page.locator(f"[data-run-id='{hid.run_id}']").count() == 0

        switcher = page.get_by_test_id("project-switcher")
        options = switcher.locator("option").all_inner_texts()
        assert options == ["All projects", "payments", "support"]  # never "hidden"
        switcher.select_option("support")
        page.wait_for_url("**project=support**")
        page.locator(f"[data-run-id='{pay.run_id}']").wait_for(state="detached")
        row = page.locator(f"[data-run-id='{sup.run_id}']")
        assert row.get_by_test_id("run-project").inner_text() == "support"
        screenshot(page, "12-project-switcher")

        # A shared link opens the same project; the project follows the navigation.
        link = page.url
        page.goto("about:blank")
        page.goto(link)
        page.locator(f"[data-run-id='{sup.run_id}']").wait_for()
        assert page.get_by_test_id("project-switcher").input_value() == "support"
        assert page.locator(f"[data-run-id='{pay.run_id}']").count() == 0
        page.get_by_role("link", name="Overview").click()
        page.wait_for_url("**/overview?project=support")
        page.goto(stack.ui_url + f"/runs/{sup.run_id}")
        assert page.get_by_test_id("run-project").inner_text() == "support"
    assert [e for e in page.errors if e.startswith("page error")] == []
