import { describe, expect, it, vi } from "vitest";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { RunSummary, Step } from "../api/types";
import { Waterfall } from "./Waterfall";

const T0 = Date.parse("2026-11-25T09:00:00.000Z");
const at = (ms: number) => new Date(T0 + ms).toISOString();

const run: RunSummary = {
  run_id: "r1", project: "default", agent_id: "a", agent_version: "v1", environment: "prod", status: "success",
  started_at: at(0), ended_at: at(1000), duration_ms: 1000, step_count: 3, error_step_count: 1, retry_count: 1,
  failure_type: null, failure_code: null, meta: {}, meta_removed: 0, source: "sdk", abandoned: false,
};

function step(seq: number, start: number, end: number, extra: Partial<Step> = {}): Step {
  return {
    seq, step_type: "tool", name: `step-${seq}`, status: "ok", started_at: at(start), ended_at: at(end),
    latency_ms: end - start, attempt: 1, retry_of_seq: null, parent_seq: null, error_class: null,
    failure_code: null, meta: {}, meta_removed: 0, ...extra,
  };
}

const steps = [
  step(1, 0, 100, { step_type: "plan", name: "plan" }),
  step(2, 100, 400, { name: "billing_api", status: "error", error_class: "TimeoutError", failure_code: "timeout" }),
  step(3, 450, 700, { name: "billing_api", attempt: 2, retry_of_seq: 2 }),
];

describe("Waterfall", () => {
  it("draws one row per step with its latency and share", () => {
    render(<Waterfall run={run} steps={steps} failingSeq={null} selectedSeq={null} onSelect={() => {}} />);
    const rows = screen.getAllByRole("listitem");
    expect(rows).toHaveLength(3);
    expect(rows[1]).toHaveTextContent("300 ms");
    expect(rows[1]).toHaveTextContent("30%");
  });

  it("marks the error step and links the retry to the attempt it retries", () => {
    const { container } = render(<Waterfall run={run} steps={steps} failingSeq={null} selectedSeq={null} onSelect={() => {}} />);
    expect(container.querySelector("li[data-seq='2']")).toHaveAttribute("data-status", "error");
    expect(container.querySelector("li[data-seq='2']")).toHaveTextContent("✕ timeout");
    const retry = container.querySelector("li[data-seq='3']")!;
    expect(retry).toHaveAttribute("data-retry-of", "2");
    expect(retry).toHaveTextContent("try 2");
    expect(container.querySelector("[data-retry-link='2->3']")).not.toBeNull();
    expect(screen.getByRole("button", { name: /Step 3: tool billing_api, ok, 250 ms, attempt 2, retry of step 2/ })).toBeInTheDocument();
  });

  it("highlights the failing step", () => {
    const { container } = render(<Waterfall run={run} steps={steps} failingSeq={2} selectedSeq={null} onSelect={() => {}} />);
    expect(container.querySelector("li[data-failing]")).toHaveAttribute("data-seq", "2");
    expect(screen.getByText("cause")).toBeInTheDocument();
  });

  it("selects a step by click or keyboard", async () => {
    const onSelect = vi.fn();
    render(<Waterfall run={run} steps={steps} failingSeq={null} selectedSeq={null} onSelect={onSelect} />);
    await userEvent.click(screen.getByRole("button", { name: /^Step 1:/ }));
    await userEvent.keyboard("{Tab}{Enter}");
    expect(onSelect.mock.calls).toEqual([[1], [2]]);
  });

  it("renders names as text, never as markup", () => {
    const evil = "<img src=x onerror=alert(1)>";
    const { container } = render(
      <Waterfall run={run} steps={[step(1, 0, 10, { name: evil })]} failingSeq={null} selectedSeq={null} onSelect={() => {}} />,
    );
    expect(screen.getByText(evil)).toBeInTheDocument();
    expect(container.querySelector("img")).toBeNull();
  });
});
