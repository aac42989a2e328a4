// Run filters <-> URL search params, so that every view can be shared as a link.
// The time range is kept as a relative preset ("24h") when one is chosen, so a shared link keeps
// meaning "the last 24 hours"; explicit since/until are kept as ISO timestamps.

export const FILTER_KEYS = [
  "project",
  "agent_id",
  "agent_version",
  "environment",
  "status",
  "failure_type",
  "failure_code",
  "step_name",
] as const;
export type FilterKey = (typeof FILTER_KEYS)[number];

export const RANGE_PRESETS = {
  "1h": 3_600_000,
  "24h": 86_400_000,
  "7d": 7 * 86_400_000,
  "30d": 30 * 86_400_000,
} as const;
export type RangePreset = keyof typeof RANGE_PRESETS | "all";

export interface Filters {
  project?: string;
  agent_id?: string;
  agent_version?: string;
  environment?: string;
  status?: string;
  failure_type?: string;
  failure_code?: string;
  step_name?: string;
  range: RangePreset;
  since?: string;
  until?: string;
}

export const DEFAULT_RANGE: RangePreset = "7d";

function isPreset(v: string | null): v is RangePreset {
  return v === "all" || (v !== null && Object.prototype.hasOwnProperty.call(RANGE_PRESETS, v));
}

function validIso(v: string | null): string | undefined {
  if (!v) return undefined;
  return Number.isNaN(Date.parse(v)) ? undefined : v;
}

/** Read filters from the URL; unknown values are ignored rather than breaking the page. */
export function filtersFromSearch(params: URLSearchParams, defaultRange: RangePreset = DEFAULT_RANGE): Filters {
  const f: Filters = { range: defaultRange };
  for (const key of FILTER_KEYS) {
    const v = params.get(key)?.trim();
    if (v) f[key] = v;
  }
  const since = validIso(params.get("since"));
  const until = validIso(params.get("until"));
  const range = params.get("range");
  if (since || until) {
    f.range = "all";
    if (since) f.since = since;
    if (until) f.until = until;
  } else if (isPreset(range)) {
    f.range = range;
  }
  return f;
}

/** Write filters to URL params (empty values and the default range are left out). */
export function filtersToSearch(f: Filters, defaultRange: RangePreset = DEFAULT_RANGE): URLSearchParams {
  const p = new URLSearchParams();
  for (const key of FILTER_KEYS) {
    const v = f[key];
    if (v) p.set(key, v);
  }
  if (f.since || f.until) {
    if (f.since) p.set("since", f.since);
    if (f.until) p.set("until", f.until);
  } else if (f.range !== defaultRange) {
    p.set("range", f.range);
  }
  return p;
}

/** The query parameters the API understands: presets become an absolute `since`. */
export function filtersToApiQuery(f: Filters, now: number = Date.now()): Record<string, string> {
  const q: Record<string, string> = {};
  for (const key of FILTER_KEYS) {
    const v = f[key];
    if (v) q[key] = v;
  }
  if (f.since) q.since = f.since;
  if (f.until) q.until = f.until;
  if (!f.since && !f.until && f.range !== "all") {
    // Rounded down to the minute so that the query key (and the cache) is stable within a minute.
    const since = Math.floor((now - RANGE_PRESETS[f.range]) / 60_000) * 60_000;
    q.since = new Date(since).toISOString();
  }
  return q;
}

/** Update one filter, returning new URL params (and dropping any pagination cursor). */
export function withFilter(params: URLSearchParams, key: FilterKey | "range", value: string | undefined): URLSearchParams {
  const next = new URLSearchParams(params);
  next.delete("cursor");
  if (key === "range") {
    next.delete("since");
    next.delete("until");
  }
  if (value) next.set(key, value);
  else next.delete(key);
  return next;
}

/** How many filters (besides the time range and the project, which the switcher shows) are active. */
export function activeFilterCount(f: Filters): number {
  return FILTER_KEYS.filter((k) => k !== "project" && Boolean(f[k])).length;
}
