"""The dashboard in a real Chromium against real servers: every view renders the seeded data."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.engine import make_engine
from tests.support.browser import screenshot
from tests.support.rundata import RunSpec, StepSpec, insert_runs

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SCRIPT_NAME = "<script>window.__pwned=1</script>"


def _fleet() -> list[RunSpec]:
    h = timedelta(hours=1)
    retried = [
        StepSpec(1, "plan", "analyze_query", 0, 40),
        StepSpec(2, "tool", "billing_api", 45, 300, status="error", error_class="TimeoutError", failure_code="timeout"),
        StepSpec(3, "tool", "billing_api", 380, 250, attempt=2, retry_of_seq=2, meta={"http_status": 200}),
        StepSpec(4, "llm", "draft_answer", 640, 500, meta={"model": "gpt-4o-mini", "tokens_in": 812}),
        StepSpec(5, "respond", "generate_response", 1150, 60),
    ]
    return [
        RunSpec("support-agent", "v1.0.0", "production", NOW - 5 * h, "success", retried, meta={"region": "eu"}),
        RunSpec("support-agent", "v1.0.0", "production", NOW - 4 * h, "failure", [
            StepSpec(1, "plan", "analyze", 0, 30),
            StepSpec(2, "tool", "external_api", 35, 900, status="error", error_class="TimeoutError",
                     failure_code="timeout"),
        ], failure={"failure_type": "tool", "failure_code": "timeout", "step_seq": 2,
                    "message": "External API timeout after 30s"}),
        RunSpec("support-agent", "v1.1.0", "staging", NOW - 3 * h, "failure", [
            StepSpec(1, "llm", "draft_answer", 0, 50, status="error", error_class="RateLimitError",
                     failure_code="rate_limited"),
        ], failure={"failure_type": "model", "failure_code": "rate_limited", "step_seq": 1}),
        RunSpec(SCRIPT_NAME, "v0", "production", NOW - 2 * h, "success", [StepSpec(1, "tool", SCRIPT_NAME, 0, 12)]),
        RunSpec("search-agent", "v1", "production", NOW - 1 * h, "running",
                [StepSpec(1, "retrieval", "kb_search", 0, 15)]),
    ]


@pytest.fixture(scope="module")
def fleet(stack: Any) -> list[RunSpec]:
    runs = _fleet()
    engine = make_engine(stack.db_url, poolclass=sa.pool.NullPool)
    insert_runs(engine, runs)
    engine.dispose()
    return runs


def test_runs_view_lists_the_seeded_runs(stack: Any, fleet: list[RunSpec], page: Any) -> None:
    page.goto(stack.ui_url + "/")
    page.wait_for_selector("[data-testid=runs-table]")
    rows = page.locator("[data-testid=runs-table] tbody tr")
    assert rows.count() == len(fleet)
    screenshot(page, "runs")


def test_run_detail_shows_the_waterfall(stack: Any, fleet: list[RunSpec], page: Any) -> None:
    page.goto(f"{stack.ui_url}/runs/{fleet[0].run_id}")
    page.wait_for_selector("[data-testid=waterfall]")
    screenshot(page, "run-detail")
    page.goto(f"{stack.ui_url}/runs/{fleet[1].run_id}")
    page.wait_for_selector("[data-testid=failure-panel]")
    screenshot(page, "run-detail-failure")
