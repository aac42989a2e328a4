import { describe, expect, it } from "vitest";
import { defaultPair, formatP, formatShape, significanceMarker } from "./compare";

const sig = (verdict: string, p: number | null = 0.01) => ({ verdict, p_value: p, test: "two_proportion_z" });

describe("significanceMarker", () => {
  it("calls a significant rise in success rate better and in latency worse", () => {
    expect(significanceMarker(0.2, sig("significant"), "higher").kind).toBe("better");
    expect(significanceMarker(120, sig("significant"), "lower").kind).toBe("worse");
    expect(significanceMarker(-120, sig("significant"), "lower").kind).toBe("better");
  });
  it("does not judge neutral metrics", () => {
    expect(significanceMarker(1.5, sig("significant"), "neutral")).toMatchObject({ kind: "changed", label: "significant" });
  });
  it("says when the sample is too small or the difference is noise", () => {
    expect(significanceMarker(0.5, sig("insufficient_data", null), "higher")).toMatchObject({ kind: "unknown", label: "too few runs" });
    expect(significanceMarker(0.01, sig("not_significant", 0.4), "higher")).toMatchObject({ kind: "same" });
    expect(significanceMarker(0.01, null, "higher").kind).toBe("unknown");
  });
  it("names the test and the p-value in the title", () => {
    expect(significanceMarker(1, { verdict: "significant", p_value: 0.0001, test: "mann_whitney_u" }, "lower").title).toBe(
      "Significant difference (Mann–Whitney U test, p < 0.001).",
    );
  });
});

describe("helpers", () => {
  it("formats p-values", () => {
    expect(formatP(0.0421)).toBe("p = 0.042");
    expect(formatP(null)).toBe("p unknown");
  });
  it("picks the two newest versions, older as base", () => {
    expect(defaultPair(["v3", "v2", "v1"])).toEqual({ base: "v2", candidate: "v3" });
    expect(defaultPair(["v1"])).toBeNull();
  });
  it("formats shapes", () => {
    expect(formatShape(["plan", "tool", "respond"])).toBe("plan → tool → respond");
    expect(formatShape([])).toBe("(no steps)");
  });
});
