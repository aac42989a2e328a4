// Runs (home): newest first, filtered from the URL, cursor pagination and optional live refresh.
import { useEffect, useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { useRuns } from "../api/hooks";
import type { RunSummary } from "../api/types";
import { FilterBar } from "../components/FilterBar";
import { EmptyState, ErrorState, Loading } from "../components/states";
import { Button, Card, PageHeader, StatusBadge } from "../components/ui";
import { activeFilterCount, filtersFromSearch, filtersToApiQuery } from "../lib/filters";
import { formatDateTime, formatDuration, formatRelative, plural, shortId } from "../lib/format";

const LIVE_KEY = "agenttracer.live";
const REFRESH_MS = 5000;

function useLive(): [boolean, (v: boolean) => void] {
  const [live, setLive] = useState(() => {
    try {
      return localStorage.getItem(LIVE_KEY) === "1";
    } catch {
      return false;
    }
  });
  return [
    live,
    (v: boolean) => {
      setLive(v);
      try {
        localStorage.setItem(LIVE_KEY, v ? "1" : "0");
      } catch {
        // not persisted
      }
    },
  ];
}

export function RunsTable({ runs }: { runs: RunSummary[] }) {
  return (
    <div className="-mx-4 overflow-x-auto">
      <table className="w-full min-w-[900px] text-left text-sm" data-testid="runs-table">
        <thead className="border-b border-slate-200 text-xs uppercase tracking-wide text-slate-500 dark:border-slate-800 dark:text-slate-400">
          <tr>
            <th scope="col" className="px-4 py-2 font-medium">Run</th>
            <th scope="col" className="px-2 py-2 font-medium">Project</th>
            <th scope="col" className="px-2 py-2 font-medium">Agent</th>
            <th scope="col" className="px-2 py-2 font-medium">Version</th>
            <th scope="col" className="px-2 py-2 font-medium">Environment</th>
            <th scope="col" className="px-2 py-2 font-medium">Status</th>
            <th scope="col" className="px-2 py-2 font-medium">Started</th>
            <th scope="col" className="px-2 py-2 text-right font-medium">Duration</th>
            <th scope="col" className="px-2 py-2 text-right font-medium">Steps</th>
            <th scope="col" className="px-2 py-2 text-right font-medium">Retries</th>
            <th scope="col" className="px-4 py-2 font-medium">Failure</th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100 dark:divide-slate-800">
          {runs.map((r) => (
            <tr key={r.run_id} className="hover:bg-slate-50 dark:hover:bg-slate-800/50" data-run-id={r.run_id}>
              <td className="px-4 py-2">
                <Link
                  to={`/runs/${r.run_id}?project=${encodeURIComponent(r.project)}`}
                  className="font-mono text-sky-700 underline-offset-2 hover:underline dark:text-sky-400"
                  title={r.run_id}
                >
                  {shortId(r.run_id)}
                </Link>
              </td>
              <td className="px-2 py-2" data-testid="run-project">{r.project}</td>
              <td className="max-w-[14rem] truncate px-2 py-2 font-medium" title={r.agent_id ?? undefined}>
                {r.agent_id ?? "—"}
              </td>
              <td className="px-2 py-2 font-mono text-xs">{r.agent_version ?? "—"}</td>
              <td className="px-2 py-2">{r.environment ?? "—"}</td>
              <td className="px-2 py-2">
                <StatusBadge status={r.status} />
              </td>
              <td className="whitespace-nowrap px-2 py-2 text-slate-600 dark:text-slate-300" title={formatDateTime(r.started_at)}>
                {formatRelative(r.started_at)}
              </td>
              <td className="px-2 py-2 text-right tabular-nums">{formatDuration(r.duration_ms)}</td>
              <td className="px-2 py-2 text-right tabular-nums">
                {r.step_count}
                {r.error_step_count > 0 && (
                  <span className="ml-1 text-xs text-red-600 dark:text-red-400" title={`${r.error_step_count} error steps`}>
                    ({r.error_step_count}✕)
                  </span>
                )}
              </td>
              <td className="px-2 py-2 text-right tabular-nums">{r.retry_count || "—"}</td>
              <td className="px-4 py-2">
                {r.failure_type ? (
                  <span className="text-red-700 dark:text-red-400">
                    {r.failure_type}
                    {r.failure_code && <span className="text-slate-500 dark:text-slate-400"> / {r.failure_code}</span>}
                  </span>
                ) : (
                  <span className="text-slate-400">—</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function RunsPage() {
  const [params, setParams] = useSearchParams();
  const [live, setLive] = useLive();
  const filters = filtersFromSearch(params);
  const cursor = params.get("cursor") ?? undefined;
  const filterKey = useMemo(() => {
    const p = new URLSearchParams(params);
    p.delete("cursor");
    return p.toString();
  }, [params]);
  // The preset's absolute `since` is fixed when the filters change, so paging stays on one window.
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const apiQuery = useMemo(() => filtersToApiQuery(filters), [filterKey]);
  const [previous, setPrevious] = useState<string[]>([]);
  useEffect(() => setPrevious([]), [filterKey]);
  const runs = useRuns(apiQuery, cursor, live && !cursor ? REFRESH_MS : false);

  const goto = (next: string | undefined, stack: string[]) => {
    const p = new URLSearchParams(params);
    if (next) p.set("cursor", next);
    else p.delete("cursor");
    setPrevious(stack);
    setParams(p);
  };

  return (
    <>
      <PageHeader
        title="Runs"
        subtitle="Every agent run, newest first."
        actions={
          <label className="flex cursor-pointer items-center gap-2 text-sm text-slate-600 dark:text-slate-300">
            <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} className="h-4 w-4 accent-sky-600" />
            Auto-refresh
            {live && runs.dataUpdatedAt > 0 && (
              <span className="text-xs text-slate-400">updated {new Date(runs.dataUpdatedAt).toLocaleTimeString()}</span>
            )}
          </label>
        }
      />
      <Card className="mb-4">
        <FilterBar />
      </Card>
      <Card
        title={
          runs.data
            ? runs.data.next_cursor
              ? `${runs.data.items.length}+ runs${cursor ? " (older page)" : ""}`
              : `${plural(runs.data.items.length, "run")}${cursor ? " (last page)" : ""}`
            : "Runs"
        }
        actions={
          <div className="flex items-center gap-2">
            {runs.isFetching && !runs.isPending && <span className="text-xs text-slate-400">refreshing…</span>}
            <Button disabled={!cursor} onClick={() => goto(undefined, [])}>
              Newest
            </Button>
            <Button disabled={!cursor} onClick={() => goto(previous.at(-1) || undefined, previous.slice(0, -1))}>
              ← Newer
            </Button>
            <Button
              disabled={!runs.data?.next_cursor}
              onClick={() => goto(runs.data?.next_cursor ?? undefined, [...previous, cursor ?? ""])}
            >
              Older →
            </Button>
          </div>
        }
      >
        {runs.data ? (
          runs.data.items.length === 0 ? (
            <EmptyState title={activeFilterCount(filters) ? "No runs match these filters" : "No runs yet"}>
              {activeFilterCount(filters) ? (
                "Widen the time range or clear a filter."
              ) : (
                <>
                  Instrument an agent with the SDK and run it; runs appear here as they are ingested. Try{" "}
                  <code className="font-mono">python examples/customer_support_agent.py</code>.
                </>
              )}
            </EmptyState>
          ) : (
            <RunsTable runs={runs.data.items} />
          )
        ) : runs.error ? (
          <ErrorState error={runs.error} retry={() => void runs.refetch()} />
        ) : (
          <Loading rows={6} />
        )}
        {runs.data && runs.error ? <div className="mt-3"><ErrorState error={runs.error} /></div> : null}
      </Card>
    </>
  );
}
