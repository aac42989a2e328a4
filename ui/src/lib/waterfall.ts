// Waterfall geometry: where each step's bar sits on the run's shared time axis, how retries link up,
// and each step's share of the run's time. Pure functions over the run detail, unit tested.

export interface WaterfallStepInput {
  seq: number;
  started_at: string;
  ended_at: string;
  latency_ms: number;
  attempt: number;
  retry_of_seq: number | null;
  parent_seq: number | null;
  status: string;
}

export interface WaterfallRunInput {
  started_at: string | null;
  ended_at: string | null;
  duration_ms: number | null;
}

export interface WaterfallRow<S extends WaterfallStepInput> {
  step: S;
  /** Bar start, as a percentage of the axis width. */
  left: number;
  /** Bar width, as a percentage of the axis width (never thinner than MIN_BAR_PCT). */
  width: number;
  /** Offset of the step's start from the axis origin, in ms. */
  offsetMs: number;
  /** The step's latency as a fraction of the run's duration (0..1), or null when unknown. */
  share: number | null;
  /** Nesting depth from parent_seq links (0 for top-level steps). */
  depth: number;
  /** For a retry: the attempt it retries, and where that attempt's bar ends (the link's start). */
  retryOf: { seq: number; endPct: number } | null;
  /** Every attempt of the same action, in attempt order (seq numbers); length 1 when never retried. */
  chain: number[];
}

export interface Waterfall<S extends WaterfallStepInput> {
  originMs: number;
  spanMs: number;
  rows: WaterfallRow<S>[];
  ticks: { ms: number; pct: number }[];
}

export const MIN_BAR_PCT = 0.4;

function ms(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/** A "nice" step (1, 2 or 5 × 10^k) so that the axis gets about `target` ticks. */
export function niceStep(spanMs: number, target = 5): number {
  const raw = Math.max(spanMs, 1e-3) / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) {
    if (raw <= m * pow) return m * pow;
  }
  return 10 * pow;
}

export function computeWaterfall<S extends WaterfallStepInput>(
  run: WaterfallRunInput,
  steps: readonly S[],
  now: number = Date.now(),
): Waterfall<S> {
  const sorted = [...steps].sort((a, b) => a.seq - b.seq);
  const starts = sorted.map((s) => ms(s.started_at)).filter((t): t is number => t !== null);
  const ends = sorted.map((s) => ms(s.ended_at)).filter((t): t is number => t !== null);
  const runStart = ms(run.started_at);
  const runEnd = ms(run.ended_at);
  const origin = Math.min(...(runStart !== null ? [runStart] : []), ...starts, ...(starts.length ? [] : [now]));
  // A running run has no end yet: the axis reaches the last step's end (or now, if nothing ended).
  const endCandidates = [...(runEnd !== null ? [runEnd] : []), ...ends];
  const end = endCandidates.length ? Math.max(...endCandidates) : now;
  const spanMs = Math.max(end - origin, 1);
  const runDuration = run.duration_ms ?? (runEnd !== null && runStart !== null ? runEnd - runStart : null);

  const bySeq = new Map(sorted.map((s) => [s.seq, s]));
  const pct = (t: number) => ((t - origin) / spanMs) * 100;

  const depthOf = (s: S): number => {
    let depth = 0;
    let cur: S | undefined = s;
    const seen = new Set<number>();
    while (cur && cur.parent_seq !== null && !seen.has(cur.seq)) {
      seen.add(cur.seq);
      cur = bySeq.get(cur.parent_seq);
      if (cur) depth += 1;
    }
    return depth;
  };

  // Attempts form chains through retry_of_seq; find each chain's root, then collect its members.
  const rootOf = (s: S): number => {
    let cur = s;
    const seen = new Set<number>();
    while (cur.retry_of_seq !== null && !seen.has(cur.seq)) {
      seen.add(cur.seq);
      const prev = bySeq.get(cur.retry_of_seq);
      if (!prev) break;
      cur = prev;
    }
    return cur.seq;
  };
  const chains = new Map<number, number[]>();
  for (const s of sorted) {
    const root = rootOf(s);
    chains.set(root, [...(chains.get(root) ?? []), s.seq]);
  }

  const rows = sorted.map((step): WaterfallRow<S> => {
    const start = ms(step.started_at) ?? origin;
    const stepEnd = ms(step.ended_at) ?? start + step.latency_ms;
    const left = Math.min(Math.max(pct(start), 0), 100);
    const width = Math.min(Math.max(pct(stepEnd) - pct(start), MIN_BAR_PCT), 100 - Math.min(left, 100 - MIN_BAR_PCT));
    const prev = step.retry_of_seq !== null ? bySeq.get(step.retry_of_seq) : undefined;
    const prevEnd = prev ? (ms(prev.ended_at) ?? start) : null;
    return {
      step,
      left,
      width,
      offsetMs: start - origin,
      share: runDuration && runDuration > 0 ? Math.min(step.latency_ms / runDuration, 1) : null,
      depth: depthOf(step),
      retryOf: prev && prevEnd !== null ? { seq: prev.seq, endPct: Math.min(Math.max(pct(prevEnd), 0), 100) } : null,
      chain: chains.get(rootOf(step)) ?? [step.seq],
    };
  });

  const stepMs = niceStep(spanMs);
  const ticks: { ms: number; pct: number }[] = [];
  for (let t = 0; t <= spanMs + 1e-9; t += stepMs) ticks.push({ ms: t, pct: (t / spanMs) * 100 });
  return { originMs: origin, spanMs, rows, ticks };
}
