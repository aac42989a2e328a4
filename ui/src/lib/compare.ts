// Reading a version comparison: whether a change is good or bad for a metric, and how to mark its
// statistical significance. Pure functions, unit tested.

export type Better = "higher" | "lower" | "neutral";

export interface SignificanceLike {
  verdict: string;
  p_value: number | null;
  test: string;
}

export type Marker =
  | { kind: "better"; label: string; title: string }
  | { kind: "worse"; label: string; title: string }
  | { kind: "changed"; label: string; title: string }
  | { kind: "same"; label: string; title: string }
  | { kind: "unknown"; label: string; title: string };

const TEST_NAMES: Record<string, string> = {
  two_proportion_z: "two-proportion z-test",
  mann_whitney_u: "Mann–Whitney U test",
};

export function formatP(p: number | null): string {
  if (p === null || !Number.isFinite(p)) return "p unknown";
  if (p < 0.001) return "p < 0.001";
  return `p = ${p.toFixed(3)}`;
}

/** The marker for one compared metric: a significant change is better or worse by the metric's direction. */
export function significanceMarker(delta: number | null, test: SignificanceLike | null, better: Better): Marker {
  if (!test) return { kind: "unknown", label: "no test", title: "No statistical test for this metric." };
  const name = TEST_NAMES[test.test] ?? test.test;
  if (test.verdict === "insufficient_data") {
    return { kind: "unknown", label: "too few runs", title: `Too few observations for a ${name}.` };
  }
  if (test.verdict !== "significant") {
    return { kind: "same", label: "not significant", title: `No significant difference (${name}, ${formatP(test.p_value)}).` };
  }
  const title = `Significant difference (${name}, ${formatP(test.p_value)}).`;
  if (better === "neutral" || delta === null || delta === 0) return { kind: "changed", label: "significant", title };
  const improved = better === "higher" ? delta > 0 : delta < 0;
  return improved ? { kind: "better", label: "significant · better", title } : { kind: "worse", label: "significant · worse", title };
}

/** Default versions to compare: the two most recently seen, older as base. */
export function defaultPair(versionsNewestFirst: string[]): { base: string; candidate: string } | null {
  if (versionsNewestFirst.length < 2) return null;
  return { base: versionsNewestFirst[1]!, candidate: versionsNewestFirst[0]! };
}

/** A run shape as a readable path: plan → retrieval → tool → respond. */
export function formatShape(shape: string[]): string {
  return shape.length ? shape.join(" → ") : "(no steps)";
}
