import { describe, expect, it } from "vitest";
import type { Stats } from "../api/types";
import { roundToTotal, timeShares } from "./attribution";

describe("roundToTotal", () => {
  it("gives the missing units to the largest remainders so the whole numbers add up", () => {
    expect(roundToTotal([33.4, 33.3, 33.3], 100)).toEqual([34, 33, 33]);
    expect(roundToTotal([12.5, 12.5, 75], 100)).toEqual([13, 12, 75]); // a tie goes to the earlier value
    expect(roundToTotal([0.4, 0.4, 99.2], 100)).toEqual([1, 0, 99]);
  });
  it("leaves values that do not add up to the total to plain rounding", () => {
    expect(roundToTotal([40.6, 40.6], 100)).toEqual([41, 41]);
  });
});

function stats(types: [string, number, number | null][], untracedMs: number, untracedShare: number | null): Stats {
  return {
    step_types: types.map(([step_type, self_time_ms, share_of_run_time]) => ({ step_type, self_time_ms, share_of_run_time })),
    run_time: { total_ms: 0, untraced_ms: untracedMs, untraced_share: untracedShare },
  } as unknown as Stats;
}

describe("timeShares", () => {
  it("orders the step types by self time, puts the untraced remainder last and adds up to 100 %", () => {
    // Three equal thirds of the time would each round to 33 %.
    const rows = timeShares(stats([["llm", 10, 1 / 3], ["tool", 20, 1 / 3]], 10, 1 / 3));
    expect(rows.map((r) => r.stepType)).toEqual(["tool", "llm", null]);
    expect(rows.map((r) => r.percent)).toEqual([34, 33, 33]);
    expect(rows.reduce((a, r) => a + (r.percent ?? 0), 0)).toBe(100);
  });
  it("has no untraced row when the steps cover the runs", () => {
    const rows = timeShares(stats([["plan", 1, 0.25], ["other", 3, 0.75]], 0, 0));
    expect(rows.map((r) => [r.stepType, r.percent])).toEqual([["other", 75], ["plan", 25]]);
  });
  it("shows no percentages without finished run time", () => {
    const rows = timeShares(stats([["llm", 0, null]], 0, null));
    expect(rows).toEqual([{ stepType: "llm", selfMs: 0, share: null, percent: null }]);
  });
});
