// Overview: totals, outcome rates, run latency percentiles, volume over time and where time goes.
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { useStats } from "../api/hooks";
import type { Stats } from "../api/types";
import { FilterBar } from "../components/FilterBar";
import { SampleNote } from "../components/SampleNote";
import { AXIS, bucketLabel, ChartBox, GRID, TOOLTIP_STYLE } from "../components/charts";
import { EmptyState, QueryView } from "../components/states";
import { Card, PageHeader, Stat, StepTypeBadge } from "../components/ui";
import { formatCount, formatDuration, formatPercent, plural } from "../lib/format";
import { timeShares } from "../lib/attribution";
import { STATUS_HEX, stepTypeHex } from "../lib/palette";
import { useUrlFilters } from "../lib/useFilters";

function VolumeChart({ stats }: { stats: Stats }) {
  const data = stats.timeline.points.map((p) => ({
    label: bucketLabel(p.start, stats.timeline.bucket),
    success: p.success_runs,
    failure: p.failure_runs,
    other: p.runs - p.success_runs - p.failure_runs,
  }));
  return (
    <ChartBox label={`Runs per ${stats.timeline.bucket}, by outcome`}>
      <ResponsiveContainer width="100%" height="100%">
        <BarChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: -16 }}>
          <CartesianGrid stroke={GRID} vertical={false} />
          <XAxis dataKey="label" {...AXIS} minTickGap={16} />
          <YAxis allowDecimals={false} {...AXIS} />
          <Tooltip contentStyle={TOOLTIP_STYLE} cursor={{ fill: "rgba(148,163,184,0.15)" }} />
          <Legend wrapperStyle={{ fontSize: 12 }} />
          <Bar dataKey="success" stackId="r" fill={STATUS_HEX.success} name="success" isAnimationActive={false} />
          <Bar dataKey="failure" stackId="r" fill={STATUS_HEX.failure} name="failure" isAnimationActive={false} />
          <Bar dataKey="other" stackId="r" fill={STATUS_HEX.partial} name="partial / running" isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
    </ChartBox>
  );
}

function TimeByStepType({ stats }: { stats: Stats }) {
  if (!stats.step_types.length) return <p className="text-sm text-slate-500">No steps in this period.</p>;
  const groups = new Map(stats.step_types.map((g) => [g.step_type, g]));
  return (
    <table className="w-full text-sm" aria-label="Share of run time by step type">
      <thead className="text-xs uppercase tracking-wide text-slate-500">
        <tr>
          <th scope="col" className="py-1 text-left font-medium">Step type</th>
          <th scope="col" className="py-1 text-right font-medium">Steps</th>
          <th scope="col" className="py-1 text-right font-medium">p50</th>
          <th scope="col" className="py-1 text-right font-medium">p95</th>
          <th scope="col" className="py-1 text-right font-medium">Errors</th>
          <th scope="col" className="py-1 text-right font-medium" title="Time no child step and no parallel step covers">
            Self time
          </th>
          <th scope="col" className="w-2/5 py-1 pl-4 text-left font-medium">Share of run time</th>
        </tr>
      </thead>
      <tbody className="divide-y divide-slate-100 dark:divide-slate-800">
        {timeShares(stats).map((row) => {
          const g = row.stepType === null ? undefined : groups.get(row.stepType);
          return (
            <tr key={row.stepType ?? "untraced"} data-share-row={row.stepType ?? "untraced"}>
              <td className="py-1.5">
                {row.stepType === null ? (
                  <span className="text-slate-500" title="Time in which no step ran: the agent's own code between steps">
                    untraced
                  </span>
                ) : (
                  <StepTypeBadge type={row.stepType} />
                )}
              </td>
              <td className="py-1.5 text-right tabular-nums">{g ? formatCount(g.count) : ""}</td>
              <td className="py-1.5 text-right tabular-nums">{g ? formatDuration(g.latency_ms.p50) : ""}</td>
              <td className="py-1.5 text-right tabular-nums">{g ? formatDuration(g.latency_ms.p95) : ""}</td>
              <td className="py-1.5 text-right tabular-nums">{g ? formatPercent(g.error_rate) : ""}</td>
              <td className="py-1.5 text-right tabular-nums">{formatDuration(row.selfMs)}</td>
              <td className="py-1.5 pl-4">
                <div className="flex items-center gap-2">
                  <div className="h-2 flex-1 rounded bg-slate-100 dark:bg-slate-800">
                    <div
                      className="h-2 rounded"
                      style={{
                        width: `${Math.min((row.share ?? 0) * 100, 100)}%`,
                        background: row.stepType === null ? "#94a3b8" : stepTypeHex(row.stepType),
                      }}
                    />
                  </div>
                  <span className="w-12 text-right tabular-nums text-slate-500" data-share-percent>
                    {row.percent === null ? "—" : `${row.percent}%`}
                  </span>
                </div>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function OverviewPage() {
  const { apiQuery } = useUrlFilters();
  const stats = useStats(apiQuery);
  return (
    <>
      <PageHeader title="Overview" subtitle="How the agents are doing in the chosen period." />
      <Card className="mb-4">
        <FilterBar fields="identity" />
      </Card>
      <QueryView query={stats}>
        {(s) =>
          s.total_runs === 0 ? (
            <Card>
              <EmptyState title="No runs in this period">Widen the time range or clear the filters.</EmptyState>
            </Card>
          ) : (
            <>
              <div className="mb-4 grid grid-cols-2 gap-3 md:grid-cols-3 lg:grid-cols-6">
                <Stat label="Runs" value={formatCount(s.total_runs)} hint={`${formatCount(s.status_counts.running)} running`} />
                <Stat
                  label="Success rate"
                  value={formatPercent(s.success_rate)}
                  hint={`${formatCount(s.status_counts.success)} of ${formatCount(s.finished_runs)} finished`}
                  tone={s.success_rate !== null && s.success_rate < 0.9 ? "warn" : "good"}
                />
                <Stat
                  label="Failures"
                  value={formatCount(s.status_counts.failure)}
                  hint={`${formatPercent(s.failure_rate)} · ${formatCount(s.status_counts.partial)} partial`}
                  tone={s.status_counts.failure ? "bad" : undefined}
                />
                <Stat label="p50 run" value={formatDuration(s.run_latency_ms.p50)} />
                <Stat label="p95 run" value={formatDuration(s.run_latency_ms.p95)} hint={`p99 ${formatDuration(s.run_latency_ms.p99)}`} />
                <Stat
                  label="Retry rate"
                  value={formatPercent(s.retries.retry_rate)}
                  hint={`${plural(s.retries.runs_with_retries, "run")} retried · ${formatDuration(s.retries.time_in_retries_ms)} in retries`}
                />
              </div>
              <div className="grid gap-4 lg:grid-cols-2">
                <Card title={`Run volume per ${s.timeline.bucket}`}>
                  <VolumeChart stats={s} />
                </Card>
                <Card title="Where the time goes (self time by step type)">
                  <TimeByStepType stats={s} />
                  <SampleNote stats={s} />
                </Card>
              </div>
            </>
          )
        }
      </QueryView>
    </>
  );
}
