// Failures: failed runs by type and by code over the period, failures over time, the steps that fail
// most, and a click-through from every bar to the runs behind it.
import { Bar, BarChart, CartesianGrid, Cell, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { Link, useNavigate } from "react-router";
import { useStats } from "../api/hooks";
import type { FailureCount, Stats } from "../api/types";
import { FilterBar } from "../components/FilterBar";
import { SampleNote } from "../components/SampleNote";
import { AXIS, bucketLabel, ChartBox, GRID, TOOLTIP_STYLE } from "../components/charts";
import { EmptyState, QueryView } from "../components/states";
import { Card, PageHeader, Stat, StepTypeBadge } from "../components/ui";
import { formatCount, formatPercent, plural } from "../lib/format";
import { FAILURE_TYPE_HEX, STATUS_HEX } from "../lib/palette";
import { runsLink, useUrlFilters } from "../lib/useFilters";

interface BarRow {
  key: string;
  count: number;
  href: string;
  color: string;
}

/** A clickable bar chart, with the same links listed below it for keyboard and screen-reader users. */
function FailureBars({ rows, label, testid }: { rows: BarRow[]; label: string; testid: string }) {
  const navigate = useNavigate();
  if (!rows.length) return <p className="text-sm text-slate-500">No failures.</p>;
  return (
    <div data-testid={testid}>
      <ChartBox label={label} height={Math.max(120, rows.length * 36 + 24)}>
        <ResponsiveContainer width="100%" height="100%">
          <BarChart data={rows} layout="vertical" margin={{ top: 4, right: 16, bottom: 4, left: 8 }}>
            <CartesianGrid stroke={GRID} horizontal={false} />
            <XAxis type="number" allowDecimals={false} {...AXIS} />
            <YAxis type="category" dataKey="key" width={130} {...AXIS} />
            <Tooltip contentStyle={TOOLTIP_STYLE} cursor={{ fill: "rgba(148,163,184,0.15)" }} formatter={(v) => [String(v), "failed runs"]} />
            <Bar
              dataKey="count"
              isAnimationActive={false}
              cursor="pointer"
              onClick={(_, index) => {
                const row = rows[index];
                if (row) void navigate(row.href);
              }}
            >
              {rows.map((r) => (
                <Cell key={r.key} fill={r.color} data-bar={r.key} />
              ))}
            </Bar>
          </BarChart>
        </ResponsiveContainer>
      </ChartBox>
      <ul className="mt-2 flex flex-wrap gap-x-4 gap-y-1 text-sm">
        {rows.map((r) => (
          <li key={r.key}>
            <Link to={r.href} className="text-sky-700 underline-offset-2 hover:underline dark:text-sky-400">
              {r.key}: {plural(r.count, "run")}
            </Link>
          </li>
        ))}
      </ul>
    </div>
  );
}

function FailuresOverTime({ stats }: { stats: Stats }) {
  const data = stats.timeline.points.map((p) => ({ label: bucketLabel(p.start, stats.timeline.bucket), failures: p.failure_runs }));
  return (
    <ChartBox label={`Failed runs per ${stats.timeline.bucket}`} height={200}>
      <ResponsiveContainer width="100%" height="100%">
        <BarChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: -16 }}>
          <CartesianGrid stroke={GRID} vertical={false} />
          <XAxis dataKey="label" {...AXIS} minTickGap={16} />
          <YAxis allowDecimals={false} {...AXIS} />
          <Tooltip contentStyle={TOOLTIP_STYLE} cursor={{ fill: "rgba(148,163,184,0.15)" }} />
          <Bar dataKey="failures" fill={STATUS_HEX.failure} isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
    </ChartBox>
  );
}

export function FailuresPage() {
  const { apiQuery, search } = useUrlFilters();
  const stats = useStats(apiQuery);
  const byType = (rows: FailureCount[]): BarRow[] =>
    rows
      .filter((r) => r.failure_type)
      .map((r) => ({
        key: r.failure_type!,
        count: r.count,
        href: runsLink(search, { failure_type: r.failure_type! }),
        color: FAILURE_TYPE_HEX[r.failure_type!] ?? "#64748b",
      }));
  const byCode = (rows: FailureCount[]): BarRow[] =>
    rows
      .filter((r) => r.failure_code)
      .map((r) => ({
        key: r.failure_code!,
        count: r.count,
        href: runsLink(search, { failure_code: r.failure_code! }),
        color: STATUS_HEX.failure!,
      }));
  return (
    <>
      <PageHeader title="Failures" subtitle="Why runs failed, and which steps cause it. Click a bar to see its runs." />
      <Card className="mb-4">
        <FilterBar fields="identity" />
      </Card>
      <QueryView query={stats}>
        {(s) =>
          s.status_counts.failure === 0 && s.top_failing_steps.length === 0 ? (
            <Card>
              <EmptyState title="No failures in this period">
                {s.total_runs ? `All ${formatCount(s.finished_runs)} finished runs ended without a failure.` : "There are no runs in this period."}
              </EmptyState>
            </Card>
          ) : (
            <>
              <div className="mb-4 grid grid-cols-2 gap-3 md:grid-cols-4">
                <Stat label="Failed runs" value={formatCount(s.status_counts.failure)} tone={s.status_counts.failure ? "bad" : undefined} />
                <Stat label="Failure rate" value={formatPercent(s.failure_rate)} hint={`of ${formatCount(s.finished_runs)} finished runs`} />
                <Stat label="Partial runs" value={formatCount(s.status_counts.partial)} hint="finished with unrecovered error steps" />
                <Stat label="Top code" value={s.failures_by_code[0]?.failure_code ?? "—"} hint={s.failures_by_code[0] ? plural(s.failures_by_code[0].count, "run") : undefined} />
              </div>
              <div className="grid gap-4 lg:grid-cols-2">
                <Card title="Failed runs by type">
                  <FailureBars rows={byType(s.failures_by_type)} label="Failed runs by failure type" testid="failures-by-type" />
                </Card>
                <Card title="Failed runs by code">
                  <FailureBars rows={byCode(s.failures_by_code)} label="Failed runs by failure code" testid="failures-by-code" />
                </Card>
                <Card title={`Failed runs per ${s.timeline.bucket}`}>
                  <FailuresOverTime stats={s} />
                </Card>
                <Card title="Steps that fail most">
                  {s.top_failing_steps.length === 0 ? (
                    <p className="text-sm text-slate-500">No error steps.</p>
                  ) : (
                    <table className="w-full text-sm" data-testid="top-failing-steps">
                      <thead className="text-xs uppercase tracking-wide text-slate-500">
                        <tr>
                          <th scope="col" className="py-1 text-left font-medium">Step</th>
                          <th scope="col" className="py-1 text-left font-medium">Type</th>
                          <th scope="col" className="py-1 text-right font-medium">Errors</th>
                          <th scope="col" className="py-1 text-right font-medium">Error rate</th>
                        </tr>
                      </thead>
                      <tbody className="divide-y divide-slate-100 dark:divide-slate-800">
                        {s.top_failing_steps.map((st) => (
                          <tr key={`${st.step_type}:${st.name}`}>
                            <td className="max-w-[16rem] truncate py-1.5">
                              <Link to={runsLink(search, { step_name: st.name })} className="text-sky-700 hover:underline dark:text-sky-400" title={st.name}>
                                {st.name}
                              </Link>
                            </td>
                            <td className="py-1.5">
                              <StepTypeBadge type={st.step_type} />
                            </td>
                            <td className="py-1.5 text-right tabular-nums">
                              {formatCount(st.error_count)} <span className="text-slate-400">/ {formatCount(st.count)}</span>
                            </td>
                            <td className="py-1.5 text-right tabular-nums">{formatPercent(st.error_rate)}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  )}
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
