// The run waterfall: one bar per step on the run's shared time axis, coloured by step type, error
// steps marked, retries linked to the attempt they retry, the failing step highlighted.
import { useEffect, useRef } from "react";
import type { RunSummary, Step } from "../api/types";
import { formatDuration, formatPercent, formatTick } from "../lib/format";
import { stepTypeHex } from "../lib/palette";
import { computeWaterfall } from "../lib/waterfall";
import { cx } from "./ui";

const ROW_REM = 2.25;

export function Waterfall({ run, steps, failingSeq, selectedSeq, onSelect }: {
  run: RunSummary;
  steps: Step[];
  failingSeq: number | null;
  selectedSeq: number | null;
  onSelect: (seq: number) => void;
}) {
  const wf = computeWaterfall(run, steps);
  const index = new Map(wf.rows.map((r, i) => [r.step.seq, i]));
  const selectedRef = useRef<HTMLButtonElement | null>(null);
  useEffect(() => {
    selectedRef.current?.scrollIntoView({ block: "nearest" });
  }, [selectedSeq]);

  return (
    <div className="text-sm" data-testid="waterfall">
      {/* Axis */}
      <div className="grid grid-cols-[minmax(12rem,20rem)_1fr_5.5rem_3.5rem] gap-x-3 border-b border-slate-200 pb-1 text-xs text-slate-500 dark:border-slate-800 dark:text-slate-400">
        <div>Step</div>
        <div className="relative h-4" aria-hidden>
          {wf.ticks.map((t) => (
            <span key={t.ms} className="absolute -translate-x-1/2 whitespace-nowrap tabular-nums first:translate-x-0 last:-translate-x-full" style={{ left: `${t.pct}%` }}>
              {formatTick(t.ms, wf.spanMs)}
            </span>
          ))}
        </div>
        <div className="text-right">Latency</div>
        <div className="text-right">Share</div>
      </div>
      <ol className="relative" aria-label="Steps in order">
        {wf.rows.map((row, i) => {
          const s = row.step;
          const failing = s.seq === failingSeq;
          const selected = s.seq === selectedSeq;
          const isError = s.status === "error";
          const dist = row.retryOf ? i - (index.get(row.retryOf.seq) ?? i - 1) : 0;
          const color = stepTypeHex(s.step_type);
          return (
            <li
              key={s.seq}
              id={`step-${s.seq}`}
              data-seq={s.seq}
              data-step-type={s.step_type}
              data-status={s.status}
              data-attempt={s.attempt}
              data-retry-of={row.retryOf?.seq ?? undefined}
              data-failing={failing || undefined}
              style={{ height: `${ROW_REM}rem` }}
            >
              <button
                type="button"
                ref={selected ? selectedRef : undefined}
                onClick={() => onSelect(s.seq)}
                aria-pressed={selected}
                aria-label={`Step ${s.seq}: ${s.step_type} ${s.name}, ${s.status}, ${formatDuration(s.latency_ms)}${
                  s.attempt > 1 ? `, attempt ${s.attempt}` : ""
                }${row.retryOf ? `, retry of step ${row.retryOf.seq}` : ""}${failing ? ", caused the failure" : ""}`}
                className={cx(
                  "grid h-full w-full grid-cols-[minmax(12rem,20rem)_1fr_5.5rem_3.5rem] items-center gap-x-3 rounded text-left",
                  selected ? "bg-sky-50 dark:bg-sky-950/60" : "hover:bg-slate-50 dark:hover:bg-slate-800/50",
                  failing && "ring-2 ring-inset ring-red-500",
                )}
              >
                <span className="flex min-w-0 items-center gap-1.5" style={{ paddingLeft: `${Math.min(row.depth, 6) * 0.9}rem` }}>
                  <span className="w-6 shrink-0 text-right font-mono text-xs text-slate-400">{s.seq}</span>
                  <span className="h-2.5 w-2.5 shrink-0 rounded-sm" style={{ background: color }} aria-hidden />
                  <span className={cx("truncate", isError && "text-red-700 dark:text-red-400")} title={s.name}>
                    {s.name}
                  </span>
                  {s.attempt > 1 && (
                    <span className="shrink-0 rounded bg-slate-100 px-1 text-[0.7rem] text-slate-600 dark:bg-slate-800 dark:text-slate-300" title={row.retryOf ? `Retry of step ${row.retryOf.seq}` : undefined}>
                      ↻ try {s.attempt}
                    </span>
                  )}
                  {isError && (
                    <span className="shrink-0 text-[0.7rem] font-semibold text-red-600 dark:text-red-400" title={s.error_class ?? "error"}>
                      ✕ {s.failure_code ?? "error"}
                    </span>
                  )}
                  {failing && (
                    <span className="shrink-0 rounded bg-red-600 px-1 text-[0.65rem] font-semibold uppercase text-white">cause</span>
                  )}
                </span>
                <span className="relative h-full" aria-hidden>
                  {wf.ticks.map((t) => (
                    <span key={t.ms} className="absolute inset-y-0 w-px bg-slate-100 dark:bg-slate-800" style={{ left: `${t.pct}%` }} />
                  ))}
                  {row.retryOf && (
                    <>
                      {/* The link from the end of the retried attempt (rows above) to this attempt's start. */}
                      <span
                        className="absolute w-0 border-l-2 border-dashed border-slate-400 dark:border-slate-500"
                        style={{ left: `${row.retryOf.endPct}%`, top: `${-(dist - 0.5) * ROW_REM}rem`, height: `${(dist - 0.5) * ROW_REM + ROW_REM / 2}rem` }}
                        data-retry-link={`${row.retryOf.seq}->${s.seq}`}
                      />
                      <span
                        className="absolute h-0 border-t-2 border-dashed border-slate-400 dark:border-slate-500"
                        style={{ left: `${row.retryOf.endPct}%`, width: `${Math.max(row.left - row.retryOf.endPct, 0)}%`, top: "50%" }}
                      />
                    </>
                  )}
                  <span
                    className={cx(
                      "absolute top-1/2 h-4 -translate-y-1/2 rounded-sm",
                      isError && "ring-2 ring-red-600 ring-offset-1 ring-offset-white dark:ring-offset-slate-900",
                    )}
                    style={{
                      left: `${row.left}%`,
                      width: `${row.width}%`,
                      background: isError
                        ? `repeating-linear-gradient(135deg, ${color}, ${color} 4px, #dc2626 4px, #dc2626 6px)`
                        : color,
                    }}
                    title={`${s.name}: ${formatDuration(s.latency_ms)} from +${formatDuration(row.offsetMs)}`}
                  />
                </span>
                <span className="text-right tabular-nums">{formatDuration(s.latency_ms)}</span>
                <span className="text-right tabular-nums text-slate-500 dark:text-slate-400">{formatPercent(row.share, 0)}</span>
              </button>
            </li>
          );
        })}
      </ol>
    </div>
  );
}

/** A legend for the step-type colours and markers. */
export function WaterfallLegend() {
  return (
    <div className="flex flex-wrap items-center gap-x-4 gap-y-1 text-xs text-slate-500 dark:text-slate-400">
      {["plan", "retrieval", "tool", "llm", "respond", "other"].map((t) => (
        <span key={t} className="flex items-center gap-1">
          <span className="h-2.5 w-2.5 rounded-sm" style={{ background: stepTypeHex(t) }} aria-hidden />
          {t}
        </span>
      ))}
      <span className="flex items-center gap-1">
        <span className="h-2.5 w-4 rounded-sm ring-2 ring-red-600" style={{ background: "repeating-linear-gradient(135deg,#94a3b8,#94a3b8 4px,#dc2626 4px,#dc2626 6px)" }} aria-hidden />
        error
      </span>
      <span className="flex items-center gap-1">
        <span className="w-5 border-t-2 border-dashed border-slate-400" aria-hidden />
        retry of
      </span>
    </div>
  );
}
