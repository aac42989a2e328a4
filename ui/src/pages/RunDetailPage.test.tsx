import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { setConfig } from "../api/client";
import type { RunDetail, Step } from "../api/types";
import { jsonResponse, renderAt } from "../test/render";
import { RunDetailPage } from "./RunDetailPage";

const RUN_ID = "3f2b9c1e-8a4d-4e0f-9b7a-1c2d3e4f5a6b";
const TOTAL = 7; // steps in the run; the fake API serves them in pages of PAGE
const PAGE = 3;

function step(seq: number): Step {
  const start = Date.parse("2026-11-25T09:00:00Z") + seq * 1000;
  return {
    seq, step_type: "tool", name: `call_${seq}`, status: seq === 7 ? "error" : "ok",
    started_at: new Date(start).toISOString(), ended_at: new Date(start + 500).toISOString(), latency_ms: 500,
    attempt: 1, retry_of_seq: null, parent_seq: null, error_class: seq === 7 ? "TimeoutError" : null,
    failure_code: seq === 7 ? "timeout" : null, meta: {}, meta_removed: 0,
  };
}

let abandoned = false; // the run's failure is the abandoned-run sweep's verdict

function page(after: number): RunDetail {
  const seqs = Array.from({ length: TOTAL }, (_, i) => i + 1).filter((s) => s > after).slice(0, PAGE);
  const last = seqs[seqs.length - 1] ?? after;
  return {
    run: {
      run_id: RUN_ID, project: "default", agent_id: "support-agent", agent_version: "v1", environment: "prod", status: "failure",
      started_at: "2026-11-25T09:00:00Z", ended_at: "2026-11-25T09:00:09Z", duration_ms: 9000, step_count: TOTAL,
      error_step_count: 1, retry_count: 0, failure_type: "tool", failure_code: "timeout", meta: {}, meta_removed: 0,
      source: "otlp", abandoned,
    },
    steps: seqs.map(step),
    next_steps_after: last < TOTAL ? last : null,
    failure: { failure_type: "tool", failure_code: "timeout", step_seq: 7, message: null, recorded_at: "2026-11-25T09:00:09Z" },
  };
}

describe("RunDetailPage", () => {
  let fetchMock: ReturnType<typeof vi.fn>;
  beforeEach(() => {
    setConfig({ queryUrl: "http://api.test" });
    fetchMock = vi.fn(async (url: URL) => {
      const body = page(Number(url.searchParams.get("steps_after") ?? 0));
      const limit = Number(url.searchParams.get("steps_limit") ?? PAGE);
      // The fake pages are PAGE steps long whatever the client asks, except one-step reads.
      return jsonResponse(limit === 1 ? { ...body, steps: body.steps.slice(0, 1) } : body);
    });
    vi.stubGlobal("fetch", fetchMock);
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    abandoned = false;
  });

  it("says which path sent the run and whether its failure is the abandoned-run sweep's", async () => {
    renderAt(<RunDetailPage />, `/runs/${RUN_ID}`, "/runs/:runId");
    expect(await screen.findByTestId("run-source")).toHaveTextContent("OTLP (/v1/traces)");
    expect(screen.getByTestId("failure-panel")).toBeInTheDocument();
    expect(screen.queryByTestId("abandoned-note")).toBeNull();
  });

  it("explains an abandoned run's failure in the failure panel", async () => {
    abandoned = true;
    renderAt(<RunDetailPage />, `/runs/${RUN_ID}`, "/runs/:runId");
    expect(await screen.findByTestId("abandoned-note")).toHaveTextContent("closed it");
  });

  it("shows the whole run's totals, links a failing step beyond the loaded pages, and loads more steps", async () => {
    renderAt(<RunDetailPage />, `/runs/${RUN_ID}`, "/runs/:runId");
    const waterfall = await screen.findByTestId("waterfall");
    expect(within(waterfall).getAllByRole("listitem")).toHaveLength(3);
    expect(screen.getByTestId("run-step-count")).toHaveTextContent(String(TOTAL));
    expect(screen.getByTestId("more-steps")).toHaveTextContent("Showing 3 of 7 steps.");
    // The failing step is beyond the loaded pages: it is read alone, and the panel links to it.
    const link = await screen.findByTestId("failure-step-link");
    expect(link).toHaveTextContent("#7 call_7");
    await userEvent.click(link);
    expect(await screen.findByText("Step #7: call_7")).toBeInTheDocument();
    expect(screen.getByTestId("location")).toHaveTextContent("?step=7");

    await userEvent.click(screen.getByRole("button", { name: "Load the next 500 steps" }));
    await screen.findByText("Showing 6 of 7 steps.");
    await userEvent.click(screen.getByRole("button", { name: "Load the next 500 steps" }));
    await screen.findByText("call_7", { selector: "[data-testid=waterfall] *" });
    expect(within(screen.getByTestId("waterfall")).getAllByRole("listitem")).toHaveLength(TOTAL);
    expect(screen.queryByTestId("more-steps")).toBeNull();
    const urls = fetchMock.mock.calls.map((c) => c[0] as URL);
    const pageAfters = urls.filter((u) => u.searchParams.get("steps_limit") !== "1").map((u) => u.searchParams.get("steps_after"));
    expect(pageAfters).toEqual(["0", "3", "6"]);
    const alone = urls.filter((u) => u.searchParams.get("steps_limit") === "1").map((u) => u.searchParams.get("steps_after"));
    expect(new Set(alone)).toEqual(new Set(["6"])); // only step 7 was read alone
  });
});
