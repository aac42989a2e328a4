// The Query API client: where the API is (from the dashboard server's /config.json), the read key
// (localStorage, sent as a Bearer token), and errors that say clearly what went wrong.

export interface DashboardConfig {
  queryUrl: string;
}

let config: DashboardConfig | null = null;

/** Load /config.json once at start-up; without it (e.g. `vite dev`), assume the Query API's default port. */
export async function loadConfig(fetchImpl: typeof fetch = fetch): Promise<DashboardConfig> {
  try {
    const res = await fetchImpl("/config.json", { cache: "no-store" });
    if (res.ok) {
      const body = (await res.json()) as { query_url?: unknown };
      if (typeof body.query_url === "string" && body.query_url) {
        config = { queryUrl: body.query_url.replace(/\/+$/, "") };
        return config;
      }
    }
  } catch {
    // fall through to the default below
  }
  config = { queryUrl: `${window.location.protocol}//${window.location.hostname}:8001` };
  return config;
}

export function setConfig(c: DashboardConfig): void {
  config = c;
}

export function queryUrl(): string {
  return config?.queryUrl ?? "http://localhost:8001";
}

// ---- the read key ---------------------------------------------------------------------------------

const KEY_STORAGE = "agenttracer.readKey";
type Listener = () => void;
const listeners = new Set<Listener>();
let authNeeded = false;

export function readKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function saveReadKey(key: string | null): void {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key.trim());
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage unavailable (private mode): the key lives only for this page
  }
  authNeeded = false;
  listeners.forEach((l) => l());
}

/** Whether the Query API has answered 401 since the key was last set. */
export function isAuthNeeded(): boolean {
  return authNeeded;
}

export function subscribeAuth(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

function markAuthNeeded(): void {
  if (!authNeeded) {
    authNeeded = true;
    listeners.forEach((l) => l());
  }
}

// ---- errors ---------------------------------------------------------------------------------------

/** The Query API answered with an error status. `detail` is the API's message, shown as text. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`Query API answered ${status}: ${detail}`);
    this.name = "ApiError";
  }
}

/** The Query API could not be reached at all (down, wrong URL, or blocked by CORS). */
export class ApiUnreachable extends Error {
  constructor(readonly url: string) {
    super(`The Query API at ${url} cannot be reached.`);
    this.name = "ApiUnreachable";
  }
}

function detailOf(body: unknown): string {
  if (body && typeof body === "object" && "detail" in body) {
    const d = (body as { detail: unknown }).detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) {
      return d
        .map((e) => {
          const item = e as { loc?: unknown[]; msg?: string };
          return [Array.isArray(item.loc) ? item.loc.join(".") : "", item.msg ?? ""].filter(Boolean).join(": ");
        })
        .join("; ");
    }
    return JSON.stringify(d);
  }
  return "";
}

/** GET a JSON resource from the Query API. Undefined and empty query values are left out. */
export async function getJson<T>(
  path: string,
  query: Record<string, string | number | undefined | null> = {},
  signal?: AbortSignal,
): Promise<T> {
  const base = queryUrl();
  const url = new URL(base + path);
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  const headers: Record<string, string> = { Accept: "application/json" };
  const key = readKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let res: Response;
  try {
    res = await fetch(url, { headers, signal });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiUnreachable(base);
  }
  if (!res.ok) {
    let body: unknown = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    if (res.status === 401) markAuthNeeded();
    throw new ApiError(res.status, detailOf(body) || res.statusText || "error");
  }
  return (await res.json()) as T;
}
