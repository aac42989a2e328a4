// Where the time goes: the overview's rows of step types by self time, plus the untraced remainder, with
// whole percentages that add up to exactly 100 (docs/analytics.md, "Latency attribution").
import type { Stats, StepType } from "../api/types";

export interface TimeShare {
  /** A step type, or null for the untraced remainder (time in which no step ran). */
  stepType: StepType | null;
  /** Summed self time, in milliseconds. */
  selfMs: number;
  /** Fraction of the finished runs' time; null when there is no finished run time to divide. */
  share: number | null;
  /** share as a whole percentage, rounded so that the rows add up to exactly 100. */
  percent: number | null;
}

/**
 * Round non-negative values to whole numbers that add up to `total` (largest remainder): each value is
 * floored, and the units still missing go to the largest fractional parts, ties to the earlier value.
 * Values whose exact sum is not `total` (within rounding) are rounded one by one instead.
 */
export function roundToTotal(values: number[], total: number): number[] {
  const sum = values.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - total) > 1e-6 * Math.max(1, total)) return values.map((v) => Math.round(v));
  const floors = values.map((v) => Math.floor(v + 1e-9));
  const rest = values.map((v, i) => v - (floors[i] ?? 0));
  let missing = total - floors.reduce((a, b) => a + b, 0);
  const order = rest.map((r, i) => ({ i, rest: r })).sort((a, b) => b.rest - a.rest || a.i - b.i);
  for (const { i } of order) {
    if (missing <= 0) break;
    floors[i] = (floors[i] ?? 0) + 1;
    missing -= 1;
  }
  return floors;
}

/** The step types by self time (most first), then the untraced remainder when there is any. */
export function timeShares(stats: Stats): TimeShare[] {
  const rows: Omit<TimeShare, "percent">[] = stats.step_types
    .map((g) => ({ stepType: g.step_type, selfMs: g.self_time_ms, share: g.share_of_run_time }))
    .sort((a, b) => b.selfMs - a.selfMs || String(a.stepType).localeCompare(String(b.stepType)));
  const { untraced_ms: untracedMs, untraced_share: untracedShare } = stats.run_time;
  if (untracedMs > 0 || untracedShare) rows.push({ stepType: null, selfMs: untracedMs, share: untracedShare });
  if (rows.some((r) => r.share === null)) return rows.map((r) => ({ ...r, percent: null }));
  const percents = roundToTotal(rows.map((r) => (r.share ?? 0) * 100), 100);
  return rows.map((r, i) => ({ ...r, percent: percents[i] ?? null }));
}
