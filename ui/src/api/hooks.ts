// TanStack Query hooks, one per Query API resource. Query keys hold every parameter, so the cache
// is shared by views asking for the same data.
import { keepPreviousData, QueryClient, useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { ApiError, getJson } from "./client";
import type { AgentList, Compare, CompareQuery, Health, ProjectList, RunDetail, RunPage, Stats } from "./types";

export const PAGE_SIZE = 50;
/** Steps per page of run detail: the Query API's default page, one bounded response each. */
export const STEP_PAGE_SIZE = 500;

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 10_000,
        refetchOnWindowFocus: false,
        // Retrying a 4xx cannot help; retry an unreachable API once, quickly.
        retry: (count, err) => !(err instanceof ApiError && err.status < 500) && count < 1,
        retryDelay: 500,
      },
    },
  });
}

export function useRuns(query: Record<string, string>, cursor: string | undefined, refreshMs: number | false) {
  return useQuery({
    queryKey: ["runs", query, cursor ?? null],
    queryFn: ({ signal }) => getJson<RunPage>("/v1/runs", { ...query, cursor, limit: PAGE_SIZE }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: refreshMs,
  });
}

/** A run's detail, its steps fetched page by page (`fetchNextPage` loads the next STEP_PAGE_SIZE). */
export function useRun(runId: string, refreshMs: number | false) {
  return useInfiniteQuery({
    queryKey: ["run", runId],
    queryFn: ({ signal, pageParam }) =>
      getJson<RunDetail>(
        `/v1/runs/${encodeURIComponent(runId)}`,
        { steps_after: pageParam, steps_limit: STEP_PAGE_SIZE },
        signal,
      ),
    initialPageParam: 0,
    getNextPageParam: (last) => last.next_steps_after ?? undefined,
    // Keep polling a run that is still in progress, so it finishes live on screen.
    refetchInterval: (q) => {
      const pages = q.state.data?.pages;
      return refreshMs && pages?.[pages.length - 1]?.run.status === "running" ? refreshMs : false;
    },
  });
}

/** One step by seq, read alone as a one-step page: for a step the loaded pages do not reach yet. */
export function useStep(runId: string, seq: number | null) {
  return useQuery({
    queryKey: ["step", runId, seq],
    queryFn: async ({ signal }) => {
      const page = await getJson<RunDetail>(
        `/v1/runs/${encodeURIComponent(runId)}`,
        { steps_after: (seq ?? 1) - 1, steps_limit: 1 },
        signal,
      );
      const step = page.steps[0];
      return step && step.seq === seq ? step : null;
    },
    enabled: seq !== null && seq >= 1,
  });
}

/** The pages of a run joined: the newest page's run totals and failure, every loaded step in seq order. */
export function joinRunPages(pages: RunDetail[]): RunDetail & { hasMore: boolean } {
  const last = pages[pages.length - 1];
  if (!last) throw new Error("a loaded run has at least one page");
  return { ...last, steps: pages.flatMap((p) => p.steps), hasMore: last.next_steps_after !== null };
}

/** Pages of /v1/agents followed at most this far (the filter selects and the agents page show them all). */
export const MAX_AGENT_PAGES = 20;
const AGENT_PAGE_SIZE = 500;

/** Every agent of ``project`` (or of every project the key reads), newest seen first: the pages of
 * /v1/agents joined, up to MAX_AGENT_PAGES of them. */
export async function getAllAgents(signal?: AbortSignal, project?: string): Promise<AgentList> {
  const items: AgentList["items"] = [];
  let cursor: string | null = null;
  for (let page = 0; page < MAX_AGENT_PAGES; page++) {
    const body: AgentList = await getJson<AgentList>("/v1/agents", { limit: AGENT_PAGE_SIZE, cursor, project }, signal);
    items.push(...body.items);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return { items, next_cursor: cursor };
}

/** The agents of one project (or of every project the key reads, when ``project`` is not given). */
export function useAgents(project?: string) {
  return useQuery({
    queryKey: ["agents", project ?? null],
    queryFn: ({ signal }) => getAllAgents(signal, project),
    staleTime: 30_000,
  });
}

/** The projects the key may read: what the project switcher offers. */
export function useProjects() {
  return useQuery({
    queryKey: ["projects"],
    queryFn: ({ signal }) => getJson<ProjectList>("/v1/projects", {}, signal),
    staleTime: 60_000,
  });
}

export function useHealth() {
  return useQuery({
    queryKey: ["health"],
    queryFn: ({ signal }) => getJson<Health>("/health", {}, signal),
    refetchInterval: 15_000,
    retry: false,
  });
}

export function useStats(query: Record<string, string>) {
  return useQuery({
    queryKey: ["stats", query],
    queryFn: ({ signal }) => getJson<Stats>("/v1/stats", query, signal),
    placeholderData: keepPreviousData,
  });
}

export function useCompare(query: CompareQuery | null) {
  return useQuery({
    queryKey: ["compare", query],
    queryFn: ({ signal }) => getJson<Compare>("/v1/compare", { ...query! }, signal),
    enabled: query !== null,
  });
}
