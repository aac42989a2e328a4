"""A run longer than one page of steps in the browser: the waterfall loads it page by page.

Its own ``agenttracer up`` stack (module scope), so the long run does not change what the other
dashboard tests count.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.support.browser import screenshot
from tests.support.rundata import RunSpec, StepSpec, ingest_runs

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS = 1_200  # the dashboard asks for 500 steps a page: two full pages and a partial one
FAILING_SEQ = 1_150


@pytest.fixture(scope="module")
def long_run(stack: Any) -> RunSpec:
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)
    steps = [StepSpec(seq, "tool", f"call_{seq}", offset_ms=seq * 3.0, latency_ms=2.0) for seq in range(1, STEPS + 1)]
    steps[FAILING_SEQ - 1] = StepSpec(FAILING_SEQ, "tool", f"call_{FAILING_SEQ}", offset_ms=FAILING_SEQ * 3.0,
                                      latency_ms=2.0, status="error", error_class="TimeoutError",
                                      failure_code="timeout")
    spec = RunSpec("long-agent", "v1", "production", start, "failure", steps,
                   failure={"failure_type": "tool", "failure_code": "timeout", "step_seq": FAILING_SEQ})
    ingest_runs(stack.ingest_url, [spec])
    return spec


def test_the_waterfall_of_a_long_run_loads_more_steps_on_request(stack: Any, long_run: RunSpec, page: Any) -> None:
    page.goto(f"{stack.ui_url}/runs/{long_run.run_id}")
    page.wait_for_selector("[data-testid=waterfall]")
    rows = page.locator("[data-testid=waterfall] li")
    assert rows.count() == 500
    # The totals describe the whole run, not the loaded page.
    assert page.get_by_test_id("run-step-count").inner_text() == str(STEPS)
    assert "Showing 500 of 1200 steps." in page.get_by_test_id("more-steps").inner_text()
    # The failing step is beyond the first page: read alone, linked from the failure panel, and its
    # details open without loading the pages before it.
    link = page.get_by_test_id("failure-step-link")
    assert f"#{FAILING_SEQ} call_{FAILING_SEQ}" in link.inner_text()
    link.click()
    details = page.locator("#step-details")
    details.wait_for()
    assert f"Step #{FAILING_SEQ}" in details.inner_text() and "TimeoutError" in details.inner_text()
    assert rows.count() == 500
    screenshot(page, "12-long-run-first-page")
    button = page.get_by_role("button", name="Load the next 500 steps")
    button.click()
    page.get_by_text("Showing 1000 of 1200 steps.").wait_for()
    assert rows.count() == 1000
    button.click()
    page.locator(f"li[data-seq='{STEPS}']").wait_for()
    assert rows.count() == STEPS
    assert page.get_by_test_id("more-steps").count() == 0
    # The failing step is in the waterfall now, marked.
    assert page.locator(f"li[data-seq='{FAILING_SEQ}']").get_attribute("data-failing") == "true"
    assert [e for e in page.errors if e.startswith("page error")] == []
