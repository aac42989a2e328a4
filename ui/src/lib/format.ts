// Formatting of durations, times, counts and rates for display. Pure functions, unit tested.

/** A latency in milliseconds as a short human string: 420 µs, 180 ms, 1.25 s, 2m 05s, 1h 02m. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms === 0) return "0 ms";
  // Sub-millisecond steps are common (a plan step that only routes): show microseconds, not "0.00 ms".
  if (ms < 0.001) return "<1 µs";
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 10) return `${trim(ms.toFixed(1))} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${trim((ms / 1000).toFixed(2))} s`;
  if (ms < 60_000) return `${trim((ms / 1000).toFixed(1))} s`;
  const totalSeconds = Math.round(ms / 1000);
  if (totalSeconds < 3600) {
    const m = Math.floor(totalSeconds / 60);
    const s = totalSeconds % 60;
    return `${m}m ${String(s).padStart(2, "0")}s`;
  }
  const totalMinutes = Math.round(totalSeconds / 60);
  const h = Math.floor(totalMinutes / 60);
  const m = totalMinutes % 60;
  if (h < 48) return `${h}h ${String(m).padStart(2, "0")}m`;
  return `${Math.round(h / 24)}d`;
}

/** A duration tick label for an axis (no trailing zeros, fixed units by scale). */
export function formatTick(ms: number, spanMs: number): string {
  if (spanMs < 10) return `${trim(ms.toFixed(2))} ms`;
  if (spanMs < 2000) return `${trim(ms.toFixed(ms < 10 ? 1 : 0))} ms`;
  if (spanMs < 120_000) return `${trim((ms / 1000).toFixed(spanMs < 20_000 ? 1 : 0))} s`;
  return formatDuration(ms);
}

function trim(s: string): string {
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}

/** A rate in 0..1 as a percentage with sensible precision. */
export function formatPercent(rate: number | null | undefined, digits = 1): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return "—";
  const pct = rate * 100;
  if (pct !== 0 && Math.abs(pct) < 0.1) return pct > 0 ? "<0.1%" : ">-0.1%";
  return `${trim(pct.toFixed(digits))}%`;
}

/** A count with thousands separators (1,234,567). */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  return Math.round(n).toLocaleString("en-US");
}

/** A UTC timestamp as local date and time, to the second. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(
    d.getMinutes(),
  )}:${pad(d.getSeconds())}`;
}

/** "3 min ago", "2 h ago"… relative to `now`; future times read "just now". */
export function formatRelative(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "—";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return "—";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** A signed difference for compare views: "+12 ms", "-3.5%" (percentage points for rates). */
export function formatDelta(delta: number | null | undefined, kind: "ms" | "rate" | "count"): string {
  if (delta === null || delta === undefined || !Number.isFinite(delta)) return "—";
  const sign = delta > 0 ? "+" : delta < 0 ? "−" : "±";
  const abs = Math.abs(delta);
  if (kind === "ms") return `${sign}${formatDuration(abs)}`;
  if (kind === "rate") return `${sign}${trim((abs * 100).toFixed(1))} pp`;
  return `${sign}${trim(abs.toFixed(abs < 10 ? 2 : 0))}`;
}

/** A short, copyable form of a UUID. */
export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id;
}

/** "1 run", "3 runs" (with thousands separators). */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}
