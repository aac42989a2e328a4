import { describe, expect, it } from "vitest";
import { computeWaterfall, MIN_BAR_PCT, niceStep, type WaterfallStepInput } from "./waterfall";

const T0 = Date.parse("2026-11-25T09:00:00.000Z");
const at = (ms: number) => new Date(T0 + ms).toISOString();

function step(seq: number, start: number, end: number, extra: Partial<WaterfallStepInput> = {}): WaterfallStepInput {
  return {
    seq,
    started_at: at(start),
    ended_at: at(end),
    latency_ms: end - start,
    attempt: 1,
    retry_of_seq: null,
    parent_seq: null,
    status: "ok",
    ...extra,
  };
}

const run = { started_at: at(0), ended_at: at(1000), duration_ms: 1000 };

describe("computeWaterfall", () => {
  it("places bars on the run's time axis", () => {
    const wf = computeWaterfall(run, [step(1, 0, 100), step(2, 250, 750)]);
    expect(wf.spanMs).toBe(1000);
    expect(wf.rows.map((r) => [r.left, r.width])).toEqual([
      [0, 10],
      [25, 50],
    ]);
    expect(wf.rows[1]!.offsetMs).toBe(250);
  });

  it("orders rows by seq whatever the input order", () => {
    const wf = computeWaterfall(run, [step(3, 500, 600), step(1, 0, 100), step(2, 100, 500)]);
    expect(wf.rows.map((r) => r.step.seq)).toEqual([1, 2, 3]);
  });

  it("computes each step's share of the run's duration", () => {
    const wf = computeWaterfall(run, [step(1, 0, 250), step(2, 250, 1000)]);
    expect(wf.rows.map((r) => r.share)).toEqual([0.25, 0.75]);
  });

  it("keeps instantaneous steps visible with a minimum width", () => {
    const wf = computeWaterfall(run, [step(1, 500, 500)]);
    expect(wf.rows[0]!.width).toBe(MIN_BAR_PCT);
  });

  it("links retries to the attempt they retry and groups the chain", () => {
    const steps = [
      step(1, 0, 50),
      step(2, 50, 300, { status: "error" }),
      step(3, 350, 600, { attempt: 2, retry_of_seq: 2, status: "error" }),
      step(4, 650, 900, { attempt: 3, retry_of_seq: 3 }),
      step(5, 900, 1000),
    ];
    const wf = computeWaterfall(run, steps);
    const [r1, r2, r3, r4, r5] = wf.rows;
    expect(r2!.retryOf).toBeNull();
    expect(r3!.retryOf).toEqual({ seq: 2, endPct: 30 });
    expect(r4!.retryOf).toEqual({ seq: 3, endPct: 60 });
    expect(r2!.chain).toEqual([2, 3, 4]);
    expect(r4!.chain).toEqual([2, 3, 4]);
    expect(r1!.chain).toEqual([1]);
    expect(r5!.chain).toEqual([5]);
  });

  it("survives a retry pointing at an unknown step and cycles", () => {
    const wf = computeWaterfall(run, [
      step(1, 0, 10, { retry_of_seq: 9 }),
      step(2, 10, 20, { retry_of_seq: 3 }),
      step(3, 20, 30, { retry_of_seq: 2 }),
    ]);
    expect(wf.rows[0]!.retryOf).toBeNull();
    expect(wf.rows).toHaveLength(3);
  });

  it("computes nesting depth from parent links", () => {
    const wf = computeWaterfall(run, [step(1, 0, 900), step(2, 10, 500, { parent_seq: 1 }), step(3, 20, 30, { parent_seq: 2 })]);
    expect(wf.rows.map((r) => r.depth)).toEqual([0, 1, 2]);
  });

  it("extends the axis for a running run to the last step's end", () => {
    const wf = computeWaterfall({ started_at: at(0), ended_at: null, duration_ms: null }, [step(1, 0, 400)]);
    expect(wf.spanMs).toBe(400);
    expect(wf.rows[0]!.share).toBeNull();
  });

  it("starts the axis at the earliest step if a step predates the run start (clock skew)", () => {
    const wf = computeWaterfall(run, [step(1, -100, 100)]);
    expect(wf.spanMs).toBe(1100);
    expect(wf.rows[0]!.left).toBe(0);
  });

  it("puts ticks at nice intervals across the span", () => {
    const wf = computeWaterfall(run, [step(1, 0, 1000)]);
    expect(wf.ticks.map((t) => t.ms)).toEqual([0, 200, 400, 600, 800, 1000]);
    expect(wf.ticks.at(-1)!.pct).toBe(100);
  });
});

describe("niceStep", () => {
  it("picks 1/2/5 × 10^k", () => {
    expect(niceStep(1000)).toBe(200);
    expect(niceStep(7000)).toBe(2000);
    expect(niceStep(2.3)).toBe(0.5);
  });
});
