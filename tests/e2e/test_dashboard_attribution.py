"""The overview's "where the time goes" in a real Chromium: with nested and parallel steps, the step types'
shares of run time and the untraced remainder add up to 100 %, and each agrees with /v1/stats."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.e2e.seed import send
from tests.support.browser import screenshot
from tests.support.rundata import RunSpec, StepSpec

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AGENT = "nested-agent"


def nested_run(start: datetime, i: int) -> RunSpec:
    # An agent loop holding an llm call and two tool calls that overlap, between a plan and an answer:
    # summed latencies come to about twice the run's duration.
    jitter = i % 5
    return RunSpec(AGENT, "v1", "production", start, "success", [
        StepSpec(1, "plan", "plan", 0, 10 + jitter),
        StepSpec(2, "other", "agent_loop", 15, 75),
        StepSpec(3, "llm", "gpt", 17, 20, parent_seq=2),
        StepSpec(4, "tool", "search", 40, 30 + jitter, parent_seq=2),
        StepSpec(5, "tool", "lookup", 45, 40, parent_seq=2),
        StepSpec(6, "respond", "answer", 95, 5),
    ])


@pytest.fixture(scope="module")
def seeded(stack: Any) -> Any:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    send(stack.ingest_url, [nested_run(now - timedelta(minutes=30) + timedelta(seconds=i), i) for i in range(12)])
    return stack


def test_overview_shares_of_run_time_add_up_to_100_percent(seeded: Any, page: Any) -> None:
    api = httpx.get(f"{seeded.query_url}/v1/stats", params={"agent_id": AGENT}, timeout=10).json()
    assert sum(g["total_latency_ms"] for g in api["step_types"]) > 1.5 * api["run_time"]["total_ms"]  # nested

    page.goto(seeded.ui_url + f"/overview?agent_id={AGENT}")
    table = page.get_by_role("table", name="Share of run time by step type")
    table.wait_for()
    rows = table.locator("[data-share-row]")
    shown = {rows.nth(i).get_attribute("data-share-row"): rows.nth(i).locator("[data-share-percent]").inner_text()
             for i in range(rows.count())}
    assert set(shown) == {g["step_type"] for g in api["step_types"]} | {"untraced"}
    percents = {key: int(text.rstrip("%")) for key, text in shown.items()}
    assert sum(percents.values()) == 100
    expected = {g["step_type"]: g["share_of_run_time"] * 100 for g in api["step_types"]}
    expected["untraced"] = api["run_time"]["untraced_share"] * 100
    for key, value in percents.items():
        assert abs(value - expected[key]) < 1, (key, value, expected[key])
    screenshot(page, "11-overview-attribution")
    assert page.errors == [], page.errors
