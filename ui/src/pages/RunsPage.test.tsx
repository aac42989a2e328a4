import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { setConfig } from "../api/client";
import type { RunSummary } from "../api/types";
import { jsonResponse, renderAt } from "../test/render";
import { RunsPage } from "./RunsPage";

function run(id: string, extra: Partial<RunSummary> = {}): RunSummary {
  return {
    run_id: id, project: "default", agent_id: "support-agent", agent_version: "v1", environment: "prod", status: "success",
    started_at: "2026-11-25T09:00:00Z", ended_at: "2026-11-25T09:00:01Z", duration_ms: 1000, step_count: 3,
    error_step_count: 0, retry_count: 0, failure_type: null, failure_code: null, meta: {}, meta_removed: 0,
    source: "sdk", abandoned: false, ...extra,
  };
}

const AGENTS = {
  items: [{ agent_id: "support-agent", run_count: 2, last_seen: null, versions: [], environments: [] }],
  next_cursor: null,
};

describe("RunsPage", () => {
  let fetchMock: ReturnType<typeof vi.fn>;
  beforeEach(() => {
    setConfig({ queryUrl: "http://api.test" });
    fetchMock = vi.fn(async (url: URL) => {
      if (url.pathname === "/v1/agents") return jsonResponse(AGENTS);
      if (url.pathname === "/health") return jsonResponse({ status: "ok", database: "ok", backend: "sqlite" });
      const cursor = url.searchParams.get("cursor");
      if (cursor === "c2") return jsonResponse({ items: [run("00000000-older")], next_cursor: null });
      return jsonResponse({
        items: [run("11111111-newer", { agent_id: "<script>alert(1)</script>", status: "failure", failure_type: "tool", failure_code: "timeout" })],
        next_cursor: "c2",
      });
    });
    vi.stubGlobal("fetch", fetchMock);
  });
  afterEach(() => vi.unstubAllGlobals());

  it("lists runs with names as text and failure columns", async () => {
    renderAt(<RunsPage />);
    const table = await screen.findByTestId("runs-table");
    expect(within(table).getByText("<script>alert(1)</script>")).toBeInTheDocument();
    expect(within(table).getByText("failure")).toBeInTheDocument();
    expect(table).toHaveTextContent("tool / timeout");
  });

  it("sends the URL's filters to the API and puts new filters in the URL", async () => {
    renderAt(<RunsPage />, "/runs?status=failure&range=all");
    await screen.findByTestId("runs-table");
    const runsCall = fetchMock.mock.calls.map((c) => c[0] as URL).find((u) => u.pathname === "/v1/runs")!;
    expect(runsCall.searchParams.get("status")).toBe("failure");
    expect(runsCall.searchParams.has("since")).toBe(false);
    await userEvent.type(screen.getByLabelText("Failure code"), "timeout{Enter}");
    expect(screen.getByTestId("location")).toHaveTextContent("/runs?status=failure&range=all&failure_code=timeout");
  });

  it("pages with the cursor and back", async () => {
    renderAt(<RunsPage />, "/runs");
    await screen.findByText("11111111");
    await userEvent.click(screen.getByRole("button", { name: "Older →" }));
    await screen.findByText("00000000");
    expect(screen.getByTestId("location")).toHaveTextContent("cursor=c2");
    await userEvent.click(screen.getByRole("button", { name: "← Newer" }));
    await screen.findByText("11111111");
    await waitFor(() => expect(screen.getByTestId("location")).not.toHaveTextContent("cursor"));
  });

  it("shows a designed empty state", async () => {
    fetchMock.mockImplementation(async (url: URL) =>
      url.pathname === "/v1/runs" ? jsonResponse({ items: [], next_cursor: null }) : jsonResponse(AGENTS),
    );
    renderAt(<RunsPage />, "/runs?agent_id=nobody");
    expect(await screen.findByText("No runs match these filters")).toBeInTheDocument();
  });
});
