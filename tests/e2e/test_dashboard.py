"""The dashboard in a real Chromium against a real ``agenttracer up``, seeded through the Ingest API.

Every view renders the seeded data; filters change the results; the waterfall links the retried step
to the attempt it retries; a failure bar leads to the runs behind it and on to the run; HTML in names
renders as text. Each view's screenshot lands in test-artifacts/.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.seed import HTML_NAME, Fleet, build_fleet, run_examples, send
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def fleet(stack: Any) -> Fleet:
    run_examples(stack.ingest_url)  # the spec's examples, through the SDK (they flush before exiting)
    f = build_fleet()
    send(stack.ingest_url, f.all())
    return f


def api_runs(stack: Any, **filters: str) -> list[dict[str, Any]]:
    """The runs the Query API returns for these filters (what the dashboard should show)."""
    res = httpx.get(f"{stack.query_url}/v1/runs", params={"limit": 500, **filters}, timeout=10)
    res.raise_for_status()
    return list(res.json()["items"])


def no_errors(page: Any) -> None:
    assert page.errors == [], page.errors


def expect_rows(page: Any, count: int) -> None:
    """Wait until the runs table shows exactly ``count`` rows."""
    from playwright.sync_api import expect

    expect(page.locator("[data-testid=runs-table] tbody tr")).to_have_count(count)


def table_rows(page: Any) -> Any:
    page.wait_for_selector("[data-testid=runs-table]")
    return page.locator("[data-testid=runs-table] tbody tr")


def test_runs_view_lists_runs_newest_first_and_pages_with_the_cursor(stack: Any, fleet: Fleet, page: Any) -> None:
    total = len(api_runs(stack))
    assert total > 50, "enough runs for two pages"
    page.goto(stack.ui_url + "/")
    rows = table_rows(page)
    assert rows.count() == 50  # one page
    expected = api_runs(stack)
    shown = [rows.nth(i).get_attribute("data-run-id") for i in range(50)]
    assert shown == [r["run_id"] for r in expected[:50]]
    starts = [r["started_at"] for r in expected]
    assert starts == sorted(starts, reverse=True)  # newest first
    assert "running" in page.locator(f"[data-run-id='{fleet.running.run_id}']").inner_text()
    screenshot(page, "01-runs")
    page.get_by_role("button", name="Older →").click()
    page.wait_for_url(re.compile(r"cursor="))
    expect_rows(page, total - 50)
    assert page.get_by_role("button", name="Older →").is_disabled()
    page.get_by_role("button", name="← Newer").click()
    expect_rows(page, 50)
    no_errors(page)


def test_filters_change_the_results_and_live_in_the_url(stack: Any, fleet: Fleet, page: Any) -> None:
    failed = api_runs(stack, status="failure")
    assert len(failed) > len([r for r in fleet.all() if r.status == "failure"])  # the examples' failures too
    page.goto(stack.ui_url + "/")
    table_rows(page)
    page.get_by_label("Status").select_option("failure")
    page.wait_for_url(re.compile(r"status=failure"))
    expect_rows(page, len(failed))
    page.get_by_label("Agent").select_option("research-agent")
    page.wait_for_url(re.compile(r"agent_id=research-agent"))
    expect_rows(page, 1)
    assert table_rows(page).first.get_attribute("data-run-id") == fleet.model_failure.run_id
    screenshot(page, "02-runs-filtered")
    # The URL alone reproduces the view (a shared link), including a text filter.
    page.goto(stack.ui_url + "/runs?step_name=outline")
    expect_rows(page, 1)
    assert table_rows(page).first.get_attribute("data-run-id") == fleet.model_failure.run_id
    assert page.get_by_label("Step name").input_value() == "outline"
    page.goto(stack.ui_url + "/runs?agent_id=nobody")
    page.wait_for_selector("text=No runs match these filters")
    no_errors(page)


def test_waterfall_draws_the_retry_as_a_linked_attempt(stack: Any, fleet: Fleet, page: Any) -> None:
    page.goto(f"{stack.ui_url}/runs/{fleet.retried.run_id}")
    page.wait_for_selector("[data-testid=waterfall]")
    first, retry = page.locator("li[data-seq='2']"), page.locator("li[data-seq='3']")
    assert first.get_attribute("data-status") == "error"
    assert first.get_attribute("data-retry-of") is None
    assert retry.get_attribute("data-attempt") == "2"
    assert retry.get_attribute("data-retry-of") == "2"
    assert page.locator("[data-retry-link='2->3']").is_visible()
    assert "try 2" in retry.inner_text()
    assert page.locator("[data-testid=waterfall] li").count() == 5
    # Per-step latency and share of the run's time.
    assert "250 ms" in retry.inner_text()
    # The run's metadata: the safe key shows, the forbidden one was removed and is counted.
    assert page.get_by_text("eu-west-1").is_visible()
    assert page.get_by_text("what is my balance").count() == 0
    assert page.locator("[data-meta-removed='1']").is_visible()
    screenshot(page, "03-run-detail-retry")
    # Keyboard: the step rows are buttons; Enter opens the step's details.
    retry.get_by_role("button").focus()
    page.keyboard.press("Enter")
    details = page.locator("#step-details")
    details.wait_for()
    assert "retry of" in details.inner_text() and "step #2" in details.inner_text()
    assert "http_status" in details.inner_text()
    no_errors(page)


def test_the_sdk_examples_retry_is_a_linked_attempt_in_the_waterfall(stack: Any, fleet: Fleet, page: Any) -> None:
    retried = [r for r in api_runs(stack, agent_id="support-agent", agent_version="v1.2.0") if r["retry_count"]]
    assert retried, "customer_support_agent.py retries the billing API for some tickets"
    run_id = retried[0]["run_id"]
    steps = httpx.get(f"{stack.query_url}/v1/runs/{run_id}", timeout=10).json()["steps"]
    retry = next(s for s in steps if s["retry_of_seq"] is not None)
    page.goto(f"{stack.ui_url}/runs/{run_id}")
    row = page.locator(f"li[data-seq='{retry['seq']}']")
    row.wait_for()
    assert row.get_attribute("data-retry-of") == str(retry["retry_of_seq"])
    assert row.get_attribute("data-attempt") == "2"
    assert page.locator(f"li[data-seq='{retry['retry_of_seq']}']").get_attribute("data-status") == "error"
    assert page.locator(f"[data-retry-link='{retry['retry_of_seq']}->{retry['seq']}']").is_visible()
    screenshot(page, "03b-run-detail-sdk-retry")
    no_errors(page)


def test_failure_panel_links_to_the_failing_step(stack: Any, fleet: Fleet, page: Any) -> None:
    page.goto(f"{stack.ui_url}/runs/{fleet.tool_timeout.run_id}")
    panel = page.locator("[data-testid=failure-panel]")
    panel.wait_for()
    assert "tool / timeout" in panel.inner_text()
    assert "External API timeout after 30s" in panel.inner_text()
    assert page.locator("li[data-failing]").get_attribute("data-seq") == "2"
    page.get_by_test_id("failure-step-link").click()
    page.wait_for_url(re.compile(r"step=2"))
    assert "Step #2: external_api" in page.locator("#step-details").inner_text()
    screenshot(page, "04-run-detail-failure")
    no_errors(page)


def test_failure_bars_lead_to_the_runs_behind_them_and_on_to_the_run(stack: Any, fleet: Fleet, page: Any) -> None:
    page.goto(stack.ui_url + "/failures")
    chart = page.get_by_test_id("failures-by-type")
    chart.locator(".recharts-bar-rectangle").first.wait_for()
    screenshot(page, "05-failures")
    # Bars are drawn in the order of the listed links below the chart.
    labels = [t.split(":")[0] for t in chart.locator("ul li").all_inner_texts()]
    assert set(labels) == {"retrieval", "tool", "model", "orchestration"}
    # orchestration: the two ops-agent runs of agent_with_failures.py (max_iterations, unhandled_exception)
    chart.locator(".recharts-bar-rectangle").nth(labels.index("orchestration")).click()
    page.wait_for_url(re.compile(r"/runs\?.*failure_type=orchestration"))
    expect_rows(page, 2)
    page.locator("[data-testid=runs-table] tbody tr", has_text="max_iterations").locator("a").first.click()
    page.get_by_test_id("failure-panel").wait_for()
    assert "orchestration / max_iterations" in page.get_by_test_id("failure-panel").inner_text()
    assert page.get_by_test_id("run-agent").inner_text() == "ops-agent"
    # And a code bar: empty_result runs are the version fleet's 3 + 15 and one of the examples.
    page.goto(stack.ui_url + "/failures")
    codes = page.get_by_test_id("failures-by-code")
    codes.locator(".recharts-bar-rectangle").first.wait_for()
    code_labels = [t.split(":")[0] for t in codes.locator("ul li").all_inner_texts()]
    codes.locator(".recharts-bar-rectangle").nth(code_labels.index("empty_result")).click()
    page.wait_for_url(re.compile(r"failure_code=empty_result"))
    expect_rows(page, len(api_runs(stack, failure_code="empty_result")))
    no_errors(page)


def test_version_comparison_marks_significant_differences(stack: Any, fleet: Fleet, page: Any) -> None:
    page.goto(stack.ui_url + "/agents")
    page.locator("[data-agent='support-agent']").wait_for()
    page.get_by_label("Agent", exact=True).select_option("support-agent")
    page.get_by_label("Base version").select_option("v1.0.0")
    page.get_by_label("Candidate version").select_option("v1.1.0")
    compare = page.get_by_test_id("compare")
    compare.wait_for()
    success = compare.locator("tr[data-metric='Success rate']")
    assert success.locator("[data-significance]").get_attribute("data-significance") == "worse"
    assert "−" in success.inner_text()  # the candidate's success rate is lower
    assert "retrieval / empty_result" in compare.inner_text()
    page.wait_for_timeout(300)
    screenshot(page, "06-agents-compare")
    no_errors(page)


def test_overview_shows_totals_rates_and_volume(stack: Any, fleet: Fleet, page: Any) -> None:
    page.goto(stack.ui_url + "/overview")
    tile = page.locator("[data-stat='Runs']")
    tile.wait_for()
    assert str(len(api_runs(stack))) in tile.inner_text()
    assert page.locator(".recharts-bar-rectangle").count() > 0
    page.wait_for_timeout(300)
    screenshot(page, "07-overview")
    no_errors(page)


def test_html_in_names_is_shown_as_text(stack: Any, fleet: Fleet, page: Any) -> None:
    page.goto(stack.ui_url + "/runs?environment=production&agent_version=v0.1.0")
    table_rows(page)
    assert page.get_by_test_id("runs-table").get_by_text(HTML_NAME, exact=True).count() == 1
    page.goto(f"{stack.ui_url}/runs/{fleet.html.run_id}")
    page.wait_for_selector("[data-testid=waterfall]")
    assert page.get_by_test_id("run-agent").inner_text() == HTML_NAME
    assert HTML_NAME in page.locator("[data-testid=waterfall]").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("script:not([src])").count() == 0
    no_errors(page)


def test_dark_theme_and_deep_links(stack: Any, fleet: Fleet, page: Any) -> None:
    page.goto(f"{stack.ui_url}/runs/{fleet.retried.run_id}?step=3")
    page.locator("#step-details").wait_for()
    page.get_by_role("button", name="Switch to dark theme").click()
    assert page.evaluate("document.documentElement.classList.contains('dark')")
    screenshot(page, "08-run-detail-dark")
    page.reload()  # the choice is remembered
    page.locator("#step-details").wait_for()
    assert page.evaluate("document.documentElement.classList.contains('dark')")
    page.goto(stack.ui_url + "/failures")
    page.get_by_test_id("failures-by-type").wait_for()
    screenshot(page, "09-failures-dark")
    no_errors(page)


def test_unknown_runs_and_pages_say_so(stack: Any, fleet: Fleet, page: Any) -> None:
    page.goto(f"{stack.ui_url}/runs/{uuid.uuid4()}")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Not found" in alert.inner_text()
    page.goto(f"{stack.ui_url}/no/such/page")
    page.get_by_text("This page does not exist").wait_for()


def test_keyboard_reaches_the_skip_link_and_the_runs(stack: Any, fleet: Fleet, page: Any) -> None:
    page.goto(stack.ui_url + "/")
    table_rows(page)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    link = page.locator(f"[data-run-id='{fleet.tool_timeout.run_id}'] a")
    link.focus()
    page.keyboard.press("Enter")
    page.get_by_test_id("failure-panel").wait_for()
    no_errors(page)


def test_auto_refresh_shows_new_runs_and_a_running_run_finishes_live(stack: Any, fleet: Fleet, page: Any) -> None:
    """Last in the module: it adds a run."""
    from datetime import datetime, timedelta, timezone

    from tests.support.rundata import RunSpec, StepSpec, events

    page.goto(stack.ui_url + "/")
    table_rows(page)
    page.get_by_label("Auto-refresh").check()
    live = RunSpec("live-agent", "v1", "production", datetime.now(timezone.utc) - timedelta(seconds=1), "success",
                   [StepSpec(1, "tool", "poll_queue", 0, 20)])
    start, step, end = events(live)
    httpx.post(f"{stack.ingest_url}/v1/ingest", json={"events": [start]}, timeout=10).raise_for_status()
    row = page.locator(f"[data-run-id='{live.run_id}']")
    row.wait_for(timeout=15_000)  # the list refreshes every 5 s
    assert "running" in row.inner_text()
    row.locator("a").click()
    page.locator("[data-status=running]").first.wait_for()
    httpx.post(f"{stack.ingest_url}/v1/ingest", json={"events": [step, end]}, timeout=10).raise_for_status()
    page.locator("h1 [data-status=success]").wait_for(timeout=15_000)  # a running run is polled every 3 s
    assert page.locator("[data-testid=waterfall] li").count() == 1
    no_errors(page)
