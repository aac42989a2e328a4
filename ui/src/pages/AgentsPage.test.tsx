import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { screen, within } from "@testing-library/react";
import { setConfig } from "../api/client";
import type { Compare, Delta, PercentileDelta } from "../api/types";
import { jsonResponse, renderAt } from "../test/render";
import { AgentsPage } from "./AgentsPage";

const AGENTS = {
  items: [
    {
      agent_id: "support-agent", run_count: 60, last_seen: null,
      versions: [
        { agent_version: "v2", run_count: 30, last_seen: null },
        { agent_version: "v1", run_count: 30, last_seen: null },
      ],
      environments: [{ environment: "production", run_count: 60, last_seen: null }],
    },
    { agent_id: "solo-agent", run_count: 3, last_seen: null, versions: [{ agent_version: "v1", run_count: 3, last_seen: null }], environments: [] },
  ],
  next_cursor: null,
};

const sig = (verdict: string) => ({ test: "two_proportion_z", verdict, p_value: verdict === "significant" ? 0.001 : 0.5, statistic: 1, alpha: 0.05 });
const delta = (base: number, candidate: number, verdict = "not_significant"): Delta => ({
  base, candidate, delta: candidate - base, relative: null, test: sig(verdict),
});
const pct = { p50: 100, p95: 200, p99: 300 };
const pdelta: PercentileDelta = { base: pct, candidate: pct, delta: { p50: 0, p95: 0, p99: 0 }, test: sig("not_significant") };
const side = (version: string) => ({
  version, runs: 30, running_runs: 0, finished_runs_in_window: version === "v2" ? 4000 : 30, sampled: version === "v2", status_counts: { running: 0, success: 27, failure: 3, partial: 0 },
  success_rate: 0.9, failure_rate: 0.1, run_latency_ms: pct, steps: 120, steps_per_run: 4, retry_steps: 0,
  retry_rate: 0, runs_with_retries: 0, run_retry_rate: 0, shape_sample_runs: 30,
});
const COMPARE: Compare = {
  agent_id: "support-agent", environment: null, since: null, until: null, alpha: 0.05, min_sample: 20, min_expected: 5,
  base: side("v1"), candidate: side("v2"),
  success_rate: delta(0.9, 0.5, "significant"), failure_rate: delta(0.1, 0.5, "significant"), run_latency_ms: pdelta,
  steps_per_run: delta(4, 4), retry_rate: delta(0, 0, "insufficient_data"), run_retry_rate: delta(0, 0, "insufficient_data"),
  failure_mix: [{ failure_type: "retrieval", failure_code: "empty_result", base_count: 3, candidate_count: 15, rate: delta(0.1, 0.5, "significant") }],
  step_types: [],
  shapes: [{ shape: ["plan", "retrieval"], base_count: 3, candidate_count: 15, share: delta(0.1, 0.5) }],
  significant: ["success_rate", "failure_rate"],
};

describe("AgentsPage", () => {
  let fetchMock: ReturnType<typeof vi.fn>;
  beforeEach(() => {
    setConfig({ queryUrl: "http://api.test" });
    fetchMock = vi.fn(async (url: URL) => jsonResponse(url.pathname === "/v1/compare" ? COMPARE : AGENTS));
    vi.stubGlobal("fetch", fetchMock);
  });
  afterEach(() => vi.unstubAllGlobals());

  it("compares the two newest versions by default, older as base, with markers", async () => {
    renderAt(<AgentsPage />, "/agents?agent=support-agent");
    const compare = await screen.findByTestId("compare");
    const call = fetchMock.mock.calls.map((c) => c[0] as URL).find((u) => u.pathname === "/v1/compare")!;
    expect(call.searchParams.get("base")).toBe("v1");
    expect(call.searchParams.get("candidate")).toBe("v2");
    const success = compare.querySelector("tr[data-metric='Success rate']") as HTMLElement;
    expect(within(success).getByText("−40 pp")).toBeInTheDocument();
    expect(success.querySelector("[data-significance]")).toHaveAttribute("data-significance", "worse");
    expect(compare).toHaveTextContent("plan → retrieval");
    expect(compare).toHaveTextContent("retrieval / empty_result");
    expect(compare.querySelectorAll("[data-significance=unknown]").length).toBeGreaterThan(0);
    expect(compare).toHaveTextContent("v2: the newest 30 of 4,000 finished runs are compared.");
  });

  it("explains why there is nothing to compare", async () => {
    renderAt(<AgentsPage />, "/agents?agent=solo-agent");
    expect(await screen.findByText("This agent has only one version so far.")).toBeInTheDocument();
    expect(fetchMock.mock.calls.some((c) => (c[0] as URL).pathname === "/v1/compare")).toBe(false);
  });
});
