// Loading, empty and error states, designed rather than blank. ErrorState explains the two errors that
// matter most to a user: the Query API is down (or unreachable), or it wants a read key.
import type { ReactNode } from "react";
import { ApiError, ApiUnreachable, queryUrl } from "../api/client";
import { Button, Code } from "./ui";

export function Loading({ label = "Loading…", rows = 3 }: { label?: string; rows?: number }) {
  return (
    <div role="status" aria-live="polite" className="space-y-2" data-state="loading">
      <span className="sr-only">{label}</span>
      {Array.from({ length: rows }, (_, i) => (
        <div key={i} className="h-6 animate-pulse rounded bg-slate-200 dark:bg-slate-800" style={{ width: `${90 - i * 12}%` }} />
      ))}
    </div>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="flex flex-col items-center justify-center gap-2 px-4 py-10 text-center" data-state="empty">
      <svg aria-hidden viewBox="0 0 24 24" className="h-8 w-8 text-slate-400" fill="none" stroke="currentColor" strokeWidth="1.5">
        <path d="M3 7h18M3 12h18M3 17h10" strokeLinecap="round" />
      </svg>
      <p className="font-medium text-slate-700 dark:text-slate-200">{title}</p>
      {children && <div className="max-w-md text-sm text-slate-500 dark:text-slate-400">{children}</div>}
    </div>
  );
}

export function ErrorState({ error, retry }: { error: unknown; retry?: () => void }) {
  let title = "Something went wrong";
  let body: ReactNode = error instanceof Error ? error.message : String(error);
  if (error instanceof ApiUnreachable) {
    title = "The Query API is not reachable";
    body = (
      <>
        The dashboard could not reach the Query API at <Code>{error.url}</Code>. Check that{" "}
        <Code>agenttracer up</Code> is running and that this address is reachable from your browser.
      </>
    );
  } else if (error instanceof ApiError) {
    if (error.status === 401) {
      title = "A read key is needed";
      body = "The Query API requires an API key with the read scope. Enter one in the dialog.";
    } else if (error.status === 403) {
      title = "This key may not read";
      body = "The Query API refused the key: use a key with the read scope (at_read_…).";
    } else if (error.status === 404) {
      title = "Not found";
      body = error.detail;
    } else {
      title = `The Query API answered ${error.status}`;
      body = error.detail;
    }
  }
  return (
    <div
      role="alert"
      data-state="error"
      className="rounded-lg border border-red-200 bg-red-50 p-4 text-sm text-red-900 dark:border-red-900/60 dark:bg-red-950/40 dark:text-red-200"
    >
      <p className="font-semibold">{title}</p>
      <p className="mt-1">{body}</p>
      {retry && (
        <Button className="mt-3" onClick={retry}>
          Try again
        </Button>
      )}
    </div>
  );
}

/** Render a query's loading / error / data states in one place. */
export function QueryView<T>({ query, children, loading }: {
  query: { data: T | undefined; error: unknown; isPending: boolean; refetch: () => unknown };
  children: (data: T) => ReactNode;
  loading?: ReactNode;
}) {
  if (query.data !== undefined) return <>{children(query.data)}</>;
  if (query.error) return <ErrorState error={query.error} retry={() => void query.refetch()} />;
  return <>{loading ?? <Loading />}</>;
}

export function apiLocation(): string {
  return queryUrl();
}
