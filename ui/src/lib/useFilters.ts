// The current view's filters from the URL, and the matching API query (stable while the URL is).
import { useMemo } from "react";
import { useSearchParams } from "react-router";
import { filtersFromSearch, filtersToApiQuery, filtersToSearch, type Filters } from "./filters";

export function useUrlFilters(): { filters: Filters; apiQuery: Record<string, string>; search: string } {
  const [params] = useSearchParams();
  const filters = filtersFromSearch(params);
  const search = filtersToSearch(filters).toString();
  // Presets become an absolute `since` once per URL change, so the query key stays put while viewing.
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const apiQuery = useMemo(() => filtersToApiQuery(filtersFromSearch(new URLSearchParams(search))), [search]);
  return { filters, apiQuery, search };
}

/** A link to the runs list with the current filters plus `extra` (e.g. a failure code). */
export function runsLink(search: string, extra: Record<string, string>): string {
  const p = new URLSearchParams(search);
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  const s = p.toString();
  return s ? `/runs?${s}` : "/runs";
}
