// Run detail: identity and outcome, the failure panel linked to its step, the waterfall, the selected
// step's details, time by step type, and the run's safe metadata with the removed-entries count.
import { Link, useParams, useSearchParams } from "react-router";
import { joinRunPages, STEP_PAGE_SIZE, useRun, useStep } from "../api/hooks";
import type { Meta, RunDetail, Step } from "../api/types";
import { Waterfall, WaterfallLegend } from "../components/Waterfall";
import { EmptyState, ErrorState, Loading } from "../components/states";
import { Card, Code, KeyValues, PageHeader, StatusBadge, StepTypeBadge } from "../components/ui";
import { formatDateTime, formatDuration, formatPercent, plural } from "../lib/format";
import { stepTypeHex } from "../lib/palette";

function metaEntries(meta: Meta): [string, string][] {
  return Object.entries(meta).map(([k, v]) => [k, v === null ? "null" : String(v)]);
}

function RemovedNote({ count, what }: { count: number; what: string }) {
  if (!count) return null;
  return (
    <p className="mt-3 rounded bg-amber-50 px-2 py-1.5 text-xs text-amber-900 dark:bg-amber-950/50 dark:text-amber-200" data-meta-removed={count}>
      {count} {what} metadata {count === 1 ? "entry was" : "entries were"} removed by the privacy policy before storage.
    </p>
  );
}

function FailurePanel({ detail, step, pending, onShowStep }: {
  detail: RunDetail;
  /** The causing step, whether the waterfall has loaded it or it was read alone. */
  step: Step | null;
  /** The causing step is being read alone (it is beyond the loaded pages). */
  pending: boolean;
  onShowStep: (seq: number) => void;
}) {
  const f = detail.failure;
  if (!f) return null;
  return (
    <section
      aria-label="Failure"
      data-testid="failure-panel"
      className="mb-4 rounded-lg border border-red-200 bg-red-50 p-4 dark:border-red-900/60 dark:bg-red-950/40"
    >
      <h2 className="text-sm font-semibold text-red-900 dark:text-red-200">
        Failed: {f.failure_type} / {f.failure_code}
      </h2>
      {f.message && <p className="mt-1 text-sm text-red-900 dark:text-red-200">{f.message}</p>}
      {detail.run.abandoned && (
        <p className="mt-1 text-sm text-red-900 dark:text-red-200" data-testid="abandoned-note">
          No event of this run arrived for the run timeout, so the server closed it (the process may have been
          killed). An end that arrives later replaces this verdict.
        </p>
      )}
      <p className="mt-2 text-sm text-red-800 dark:text-red-300">
        {step ? (
          <>
            Caused by step{" "}
            <Link
              to={`?step=${step.seq}`}
              replace
              onClick={() => onShowStep(step.seq)}
              className="font-medium underline underline-offset-2"
              data-testid="failure-step-link"
            >
              #{step.seq} {step.name}
            </Link>{" "}
            ({step.step_type}
            {step.error_class ? `, ${step.error_class}` : ""}).
          </>
        ) : f.step_seq !== null && pending ? (
          `Caused by step #${f.step_seq}…`
        ) : f.step_seq !== null ? (
          `Caused by step #${f.step_seq}, which was not received.`
        ) : (
          "No causing step was recorded."
        )}
      </p>
    </section>
  );
}

function StepDetails({ step, runDuration }: { step: Step; runDuration: number | null }) {
  return (
    <Card title={`Step #${step.seq}: ${step.name}`} className="mt-4" id="step-details">
      <div className="grid gap-6 md:grid-cols-2">
        <KeyValues
          entries={[
            ["type", <StepTypeBadge key="t" type={step.step_type} />],
            ["status", <StatusBadge key="s" status={step.status} />],
            ["latency", formatDuration(step.latency_ms)],
            ["share of run", runDuration ? formatPercent(step.latency_ms / runDuration) : "—"],
            ["attempt", String(step.attempt)],
            ...(step.retry_of_seq !== null ? ([["retry of", `step #${step.retry_of_seq}`]] as [string, string][]) : []),
            ...(step.parent_seq !== null ? ([["inside", `step #${step.parent_seq}`]] as [string, string][]) : []),
            ["started", formatDateTime(step.started_at)],
            ...(step.error_class ? ([["error class", <Code key="e">{step.error_class}</Code>]] as [string, React.ReactNode][]) : []),
            ...(step.failure_code ? ([["failure code", step.failure_code]] as [string, string][]) : []),
          ]}
        />
        <div>
          <h3 className="mb-1 text-xs font-semibold uppercase tracking-wide text-slate-500">Metadata</h3>
          <KeyValues entries={metaEntries(step.meta)} empty="No metadata on this step." />
          <RemovedNote count={step.meta_removed} what="step" />
        </div>
      </div>
    </Card>
  );
}

function TimeByType({ steps, runDuration }: { steps: Step[]; runDuration: number | null }) {
  const totals = new Map<string, number>();
  for (const s of steps) totals.set(s.step_type, (totals.get(s.step_type) ?? 0) + s.latency_ms);
  const rows = [...totals.entries()].sort((a, b) => b[1] - a[1]);
  const denom = runDuration && runDuration > 0 ? runDuration : rows.reduce((a, [, v]) => a + v, 0);
  return (
    <ul className="space-y-2 text-sm">
      {rows.map(([type, ms]) => (
        <li key={type}>
          <div className="flex justify-between">
            <StepTypeBadge type={type} />
            <span className="tabular-nums">
              {formatDuration(ms)} <span className="text-slate-500">· {formatPercent(denom ? ms / denom : null, 0)}</span>
            </span>
          </div>
          <div className="mt-1 h-1.5 rounded bg-slate-100 dark:bg-slate-800">
            <div className="h-1.5 rounded" style={{ width: `${Math.min(denom ? (ms / denom) * 100 : 0, 100)}%`, background: stepTypeHex(type) }} />
          </div>
        </li>
      ))}
    </ul>
  );
}

export function RunDetailPage() {
  const { runId = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const q = useRun(runId, 3000);
  const selected = params.get("step") ? Number(params.get("step")) : null;
  const select = (seq: number) => setParams({ step: String(seq) }, { replace: true });

  const detail = q.data ? joinRunPages(q.data.pages) : null;
  // A step past the loaded pages (a deep link, or the failure's causing step near the end of a long
  // run) is read alone, so it can be shown without loading every page before it.
  const lastLoaded = detail?.steps[detail.steps.length - 1]?.seq ?? 0;
  const beyond = (seq: number | null | undefined) => (detail?.hasMore && seq != null && seq > lastLoaded ? seq : null);
  const selectedAlone = useStep(runId, beyond(selected));
  const failingAlone = useStep(runId, beyond(detail?.failure?.step_seq));

  if (q.error && !q.data) return <ErrorState error={q.error} retry={() => void q.refetch()} />;
  if (!detail) return <Loading rows={8} label="Loading run…" />;
  const { run, steps, failure, hasMore } = detail;
  const find = (seq: number | null | undefined) => steps.find((s) => s.seq === seq) ?? null;
  const selectedStep = find(selected) ?? selectedAlone.data ?? null;
  const failingStep = find(failure?.step_seq) ?? failingAlone.data ?? null;
  const stepRemoved = steps.reduce((a, s) => a + s.meta_removed, 0);
  return (
    <>
      <nav aria-label="Breadcrumb" className="mb-2 text-sm">
        <Link to="/" className="text-sky-700 hover:underline dark:text-sky-400">
          Runs
        </Link>{" "}
        <span className="text-slate-400">/</span> <span className="font-mono text-xs">{run.run_id}</span>
      </nav>
      <PageHeader
        title={
          <span className="flex flex-wrap items-center gap-3">
            <span data-testid="run-agent">{run.agent_id ?? "unknown agent"}</span>
            <StatusBadge status={run.status} />
          </span>
        }
        subtitle={
          <>
            project <span data-testid="run-project"><Code>{run.project}</Code></span> · version <Code>{run.agent_version ?? "?"}</Code> ·{" "}
            {run.environment ?? "?"} · started {formatDateTime(run.started_at)} · sent over{" "}
            <span data-testid="run-source">{run.source === "otlp" ? "OTLP (/v1/traces)" : "the SDK (/v1/ingest)"}</span>
          </>
        }
      />
      <div className="mb-4 grid grid-cols-2 gap-3 sm:grid-cols-4">
        <div className="rounded-lg border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900">
          <div className="text-xs text-slate-500">Duration</div>
          <div className="text-lg font-semibold tabular-nums">{run.status === "running" ? "running…" : formatDuration(run.duration_ms)}</div>
        </div>
        <div className="rounded-lg border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900">
          <div className="text-xs text-slate-500">Steps</div>
          <div className="text-lg font-semibold tabular-nums" data-testid="run-step-count">{run.step_count}</div>
        </div>
        <div className="rounded-lg border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900">
          <div className="text-xs text-slate-500">Retries</div>
          <div className="text-lg font-semibold tabular-nums">{run.retry_count}</div>
        </div>
        <div className="rounded-lg border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900">
          <div className="text-xs text-slate-500">Error steps</div>
          <div className="text-lg font-semibold tabular-nums">{run.error_step_count}</div>
        </div>
      </div>
      <FailurePanel detail={detail} step={failingStep} pending={failingAlone.isLoading} onShowStep={select} />
      <Card title="Waterfall" actions={<WaterfallLegend />}>
        {steps.length === 0 ? (
          <EmptyState title="No steps recorded">This run has no steps (yet).</EmptyState>
        ) : (
          <Waterfall run={run} steps={steps} failingSeq={failure?.step_seq ?? null} selectedSeq={selected} onSelect={select} />
        )}
        {hasMore && (
          <div className="mt-3 flex items-center gap-3 text-sm" data-testid="more-steps">
            <span className="text-slate-500">
              Showing {steps.length} of {run.step_count} steps.
            </span>
            <button
              type="button"
              className="rounded border border-slate-300 px-3 py-1 font-medium hover:bg-slate-50 disabled:opacity-50 dark:border-slate-700 dark:hover:bg-slate-800"
              disabled={q.isFetchingNextPage}
              onClick={() => void q.fetchNextPage()}
            >
              {q.isFetchingNextPage ? "Loading…" : `Load the next ${STEP_PAGE_SIZE} steps`}
            </button>
          </div>
        )}
      </Card>
      {selectedStep && <StepDetails step={selectedStep} runDuration={run.duration_ms} />}
      <div className="mt-4 grid gap-4 md:grid-cols-2">
        <Card title={hasMore ? `Time by step type (first ${steps.length} steps)` : "Time by step type"}>
          {steps.length ? <TimeByType steps={steps} runDuration={run.duration_ms} /> : <p className="text-sm text-slate-500">No steps.</p>}
        </Card>
        <Card title="Run metadata">
          <KeyValues entries={metaEntries(run.meta)} empty="No metadata on this run." />
          <RemovedNote count={run.meta_removed} what="run" />
          <p className="mt-3 text-xs text-slate-500">
            {stepRemoved
              ? `${plural(stepRemoved, "step metadata entry", "step metadata entries")} removed by the privacy policy (see each step).`
              : "No step metadata was removed."}
          </p>
        </Card>
      </div>
    </>
  );
}
