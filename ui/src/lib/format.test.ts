import { describe, expect, it } from "vitest";
import { plural, formatCount, formatDelta, formatDuration, formatPercent, formatRelative, formatTick } from "./format";

describe("formatDuration", () => {
  it.each([
    [0, "0 ms"],
    [0.421, "421 µs"],
    [0.0004, "<1 µs"],
    [3.25, "3.3 ms"],
    [180.4, "180 ms"],
    [999.4, "999 ms"],
    [1250, "1.25 s"],
    [12_340, "12.3 s"],
    [125_000, "2m 05s"],
    [3_720_000, "1h 02m"],
    [3 * 86_400_000, "3d"],
  ])("%s ms reads %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("shows a dash for missing or non-finite values", () => {
    expect(formatDuration(null)).toBe("—");
    expect(formatDuration(undefined)).toBe("—");
    expect(formatDuration(Number.NaN)).toBe("—");
  });
});

describe("formatTick", () => {
  it("uses units that fit the span", () => {
    expect(formatTick(500, 1500)).toBe("500 ms");
    expect(formatTick(2500, 10_000)).toBe("2.5 s");
    expect(formatTick(0, 1500)).toBe("0 ms");
  });
});

describe("formatPercent", () => {
  it("renders rates as percentages", () => {
    expect(formatPercent(0.5)).toBe("50%");
    expect(formatPercent(0.1234)).toBe("12.3%");
    expect(formatPercent(0.0004)).toBe("<0.1%");
    expect(formatPercent(null)).toBe("—");
  });
});

describe("formatCount and formatDelta", () => {
  it("separates thousands", () => {
    expect(formatCount(1234567)).toBe("1,234,567");
  });
  it("signs deltas and uses percentage points for rates", () => {
    expect(formatDelta(0.052, "rate")).toBe("+5.2 pp");
    expect(formatDelta(-120, "ms")).toBe("−120 ms");
    expect(formatDelta(0, "count")).toBe("±0");
  });
});

describe("formatRelative", () => {
  it("says how long ago", () => {
    const now = Date.parse("2026-11-25T10:00:00Z");
    expect(formatRelative("2026-11-25T09:59:50Z", now)).toBe("just now");
    expect(formatRelative("2026-11-25T09:50:00Z", now)).toBe("10 min ago");
    expect(formatRelative("2026-11-25T07:00:00Z", now)).toBe("3 h ago");
  });
});

describe("plural", () => {
  it("agrees with the count", () => {
    expect(plural(1, "run")).toBe("1 run");
    expect(plural(1200, "run")).toBe("1,200 runs");
    expect(plural(0, "entry", "entries")).toBe("0 entries");
  });
});
