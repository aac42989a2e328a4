// Agents and versions: every agent with its versions and environments, and a side-by-side comparison
// of two versions (from the execution shape only) with deltas and significance markers.
import { useSearchParams } from "react-router";
import { Link } from "react-router";
import { useAgents, useCompare } from "../api/hooks";
import type { Agent, Compare, Delta, PercentileDelta } from "../api/types";
import { RangeSelect } from "../components/FilterBar";
import { SignificanceMarker } from "../components/Significance";
import { EmptyState, ErrorState, Loading, QueryView } from "../components/states";
import { Card, Code, PageHeader, Select, StepTypeBadge } from "../components/ui";
import { type Better, defaultPair, formatShape } from "../lib/compare";
import { filtersFromSearch, filtersToApiQuery } from "../lib/filters";
import { formatCount, formatDelta, formatDuration, formatPercent, formatRelative, plural } from "../lib/format";

type Kind = "rate" | "ms" | "count";

function fmt(v: number | null | undefined, kind: Kind): string {
  if (kind === "rate") return formatPercent(v);
  if (kind === "ms") return formatDuration(v);
  return v === null || v === undefined ? "—" : Number.isInteger(v) ? formatCount(v) : v.toFixed(2);
}

function MetricRow({ label, d, kind, better }: { label: string; d: Delta; kind: Kind; better: Better }) {
  return (
    <tr data-metric={label}>
      <th scope="row" className="py-1.5 text-left font-normal">{label}</th>
      <td className="py-1.5 text-right tabular-nums">{fmt(d.base, kind)}</td>
      <td className="py-1.5 text-right tabular-nums">{fmt(d.candidate, kind)}</td>
      <td className="py-1.5 text-right tabular-nums">{formatDelta(d.delta, kind)}</td>
      <td className="py-1.5 pl-3">
        <SignificanceMarker delta={d.delta} test={d.test} better={better} />
      </td>
    </tr>
  );
}

function PercentileRows({ label, p }: { label: string; p: PercentileDelta }) {
  return (
    <>
      {(["p50", "p95", "p99"] as const).map((k) => (
        <tr key={k} data-metric={`${label} ${k}`}>
          <th scope="row" className="py-1.5 text-left font-normal">
            {label} {k}
          </th>
          <td className="py-1.5 text-right tabular-nums">{formatDuration(p.base[k])}</td>
          <td className="py-1.5 text-right tabular-nums">{formatDuration(p.candidate[k])}</td>
          <td className="py-1.5 text-right tabular-nums">{formatDelta(p.delta[k], "ms")}</td>
          <td className="py-1.5 pl-3">{k === "p50" && <SignificanceMarker delta={p.delta.p50} test={p.test} better="lower" />}</td>
        </tr>
      ))}
    </>
  );
}

function Head({ c, first }: { c: Compare; first: string }) {
  return (
    <thead className="border-b border-slate-200 text-xs uppercase tracking-wide text-slate-500 dark:border-slate-800">
      <tr>
        <th scope="col" className="py-1 text-left font-medium">{first}</th>
        <th scope="col" className="py-1 text-right font-medium">{c.base.version}</th>
        <th scope="col" className="py-1 text-right font-medium">{c.candidate.version}</th>
        <th scope="col" className="py-1 text-right font-medium">Δ</th>
        <th scope="col" className="py-1 pl-3 text-left font-medium">Significance</th>
      </tr>
    </thead>
  );
}

function CompareView({ c }: { c: Compare }) {
  return (
    <div className="space-y-4" data-testid="compare">
      <p className="text-sm text-slate-600 dark:text-slate-300">
        <Code>{c.base.version}</Code> ({formatCount(c.base.runs)} finished runs) against <Code>{c.candidate.version}</Code> (
        {formatCount(c.candidate.runs)} finished runs){c.environment ? ` in ${c.environment}` : ""}. Tests at α = {c.alpha}; each
        side needs {c.min_sample} runs before a test says anything.
        {[c.base, c.candidate]
          .filter((v) => v.sampled)
          .map((v) => ` ${v.version}: the newest ${formatCount(v.runs)} of ${formatCount(v.finished_runs_in_window)} finished runs are compared.`)
          .join("")}
      </p>
      <div className="grid gap-4 lg:grid-cols-2">
        <Card title="Outcome, latency and retries">
          <table className="w-full text-sm">
            <Head c={c} first="Metric" />
            <tbody className="divide-y divide-slate-100 dark:divide-slate-800">
              <MetricRow label="Success rate" d={c.success_rate} kind="rate" better="higher" />
              <MetricRow label="Failure rate" d={c.failure_rate} kind="rate" better="lower" />
              <PercentileRows label="Run" p={c.run_latency_ms} />
              <MetricRow label="Steps per run" d={c.steps_per_run} kind="count" better="neutral" />
              <MetricRow label="Retry rate (steps)" d={c.retry_rate} kind="rate" better="lower" />
              <MetricRow label="Runs with retries" d={c.run_retry_rate} kind="rate" better="lower" />
            </tbody>
          </table>
        </Card>
        <Card title="Per step type (latency p50 and error rate)">
          {c.step_types.length === 0 ? (
            <p className="text-sm text-slate-500">No steps.</p>
          ) : (
            <table className="w-full text-sm">
              <thead className="border-b border-slate-200 text-xs uppercase tracking-wide text-slate-500 dark:border-slate-800">
                <tr>
                  <th scope="col" className="py-1 text-left font-medium">Step type</th>
                  <th scope="col" className="py-1 text-right font-medium">{c.base.version}</th>
                  <th scope="col" className="py-1 text-right font-medium">{c.candidate.version}</th>
                  <th scope="col" className="py-1 text-right font-medium">Δ</th>
                  <th scope="col" className="py-1 pl-3 text-left font-medium">Significance</th>
                </tr>
              </thead>
              {c.step_types.map((t) => (
                <tbody key={t.step_type} data-step-type={t.step_type} className="border-b border-slate-100 last:border-0 dark:border-slate-800">
                  <tr>
                    <th scope="row" className="pt-1.5 text-left font-normal">
                      <StepTypeBadge type={t.step_type} /> <span className="text-xs text-slate-500">p50</span>
                    </th>
                    <td className="pt-1.5 text-right tabular-nums">{formatDuration(t.latency_ms.base.p50)}</td>
                    <td className="pt-1.5 text-right tabular-nums">{formatDuration(t.latency_ms.candidate.p50)}</td>
                    <td className="pt-1.5 text-right tabular-nums">{formatDelta(t.latency_ms.delta.p50, "ms")}</td>
                    <td className="pt-1.5 pl-3">
                      <SignificanceMarker delta={t.latency_ms.delta.p50} test={t.latency_ms.test} better="lower" />
                    </td>
                  </tr>
                  <tr>
                    <th scope="row" className="pb-1.5 pl-4 text-left text-xs font-normal text-slate-500">errors</th>
                    <td className="pb-1.5 text-right tabular-nums">{formatPercent(t.error_rate.base)}</td>
                    <td className="pb-1.5 text-right tabular-nums">{formatPercent(t.error_rate.candidate)}</td>
                    <td className="pb-1.5 text-right tabular-nums">{formatDelta(t.error_rate.delta, "rate")}</td>
                    <td className="pb-1.5 pl-3">
                      <SignificanceMarker delta={t.error_rate.delta} test={t.error_rate.test} better="lower" />
                    </td>
                  </tr>
                </tbody>
              ))}
            </table>
          )}
        </Card>
        <Card title="Failure mix (share of runs)">
          {c.failure_mix.length === 0 ? (
            <p className="text-sm text-slate-500">Neither version has failed runs.</p>
          ) : (
            <table className="w-full text-sm">
              <Head c={c} first="Failure" />
              <tbody className="divide-y divide-slate-100 dark:divide-slate-800">
                {c.failure_mix.map((f) => (
                  <MetricRow key={`${f.failure_type}/${f.failure_code}`} label={`${f.failure_type} / ${f.failure_code}`} d={f.rate} kind="rate" better="lower" />
                ))}
              </tbody>
            </table>
          )}
        </Card>
        <Card title="Run shapes (share of runs)">
          {c.shapes.length === 0 ? (
            <p className="text-sm text-slate-500">No shapes.</p>
          ) : (
            <table className="w-full text-sm">
              <Head c={c} first="Shape" />
              <tbody className="divide-y divide-slate-100 dark:divide-slate-800">
                {c.shapes.map((s) => (
                  <MetricRow key={s.shape.join(">")} label={formatShape(s.shape)} d={s.share} kind="rate" better="neutral" />
                ))}
              </tbody>
            </table>
          )}
        </Card>
      </div>
    </div>
  );
}

function AgentCard({ agent, project, onCompare }: { agent: Agent; project?: string; onCompare: (agent: string) => void }) {
  const projectParam = project ? `&project=${encodeURIComponent(project)}` : "";
  return (
    <Card
      title={agent.agent_id}
      actions={
        <span className="text-xs text-slate-500">
          {plural(agent.run_count, "run")} · last {formatRelative(agent.last_seen)}
        </span>
      }
    >
      <div data-agent={agent.agent_id}>
        <table className="w-full text-sm">
          <thead className="text-xs uppercase tracking-wide text-slate-500">
            <tr>
              <th scope="col" className="py-1 text-left font-medium">Version</th>
              <th scope="col" className="py-1 text-right font-medium">Runs</th>
              <th scope="col" className="py-1 text-right font-medium">Last seen</th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100 dark:divide-slate-800">
            {agent.versions.map((v) => (
              <tr key={v.agent_version}>
                <td className="py-1.5">
                  <Link
                    to={`/runs?agent_id=${encodeURIComponent(agent.agent_id)}&agent_version=${encodeURIComponent(v.agent_version)}&range=all${projectParam}`}
                    className="font-mono text-xs text-sky-700 hover:underline dark:text-sky-400"
                  >
                    {v.agent_version}
                  </Link>
                </td>
                <td className="py-1.5 text-right tabular-nums">{formatCount(v.run_count)}</td>
                <td className="py-1.5 text-right text-slate-500">{formatRelative(v.last_seen)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <div className="mt-3 flex flex-wrap items-center justify-between gap-2">
          <div className="flex flex-wrap gap-1">
            {agent.environments.map((e) => (
              <span key={e.environment} className="rounded bg-slate-100 px-1.5 py-0.5 text-xs dark:bg-slate-800" title={`${e.run_count} runs`}>
                {e.environment}
              </span>
            ))}
          </div>
          {agent.versions.length >= 2 && (
            <button type="button" onClick={() => onCompare(agent.agent_id)} className="text-sm font-medium text-sky-700 hover:underline dark:text-sky-400">
              Compare versions →
            </button>
          )}
        </div>
      </div>
    </Card>
  );
}

export function AgentsPage() {
  const [params, setParams] = useSearchParams();
  const project = params.get("project") || undefined;
  const agents = useAgents(project);
  const list = agents.data?.items ?? [];
  const agentId = params.get("agent") ?? "";
  const agent = list.find((a) => a.agent_id === agentId);
  const versions = agent?.versions.map((v) => v.agent_version) ?? [];
  const pair = defaultPair(versions);
  const base = params.get("base") ?? pair?.base ?? "";
  const candidate = params.get("candidate") ?? pair?.candidate ?? "";
  const env = params.get("environment") ?? "";
  const range = filtersFromSearch(params, "30d");
  const since = filtersToApiQuery(range).since;
  const ready = Boolean(agent && base && candidate && base !== candidate);
  const compare = useCompare(
    ready ? { agent_id: agentId, base, candidate, environment: env || undefined, since, project } : null,
  );

  const set = (changes: Record<string, string | null>) => {
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) p.set(k, v);
      else p.delete(k);
    }
    setParams(p);
  };

  return (
    <>
      <PageHeader title="Agents & versions" subtitle="Every agent seen, its versions and environments; compare two versions side by side." />
      <Card title="Compare two versions" className="mb-4" id="compare">
        <div className="mb-4 flex flex-wrap items-end gap-3">
          <Select label="Agent" name="agent" value={agentId} onChange={(e) => set({ agent: e.target.value, base: null, candidate: null, environment: null })}>
            <option value="">Choose an agent…</option>
            {list.map((a) => (
              <option key={a.agent_id} value={a.agent_id}>
                {a.agent_id}
              </option>
            ))}
          </Select>
          <Select label="Base version" name="base" value={base} onChange={(e) => set({ base: e.target.value })} disabled={!agent}>
            {versions.map((v) => (
              <option key={v} value={v}>
                {v}
              </option>
            ))}
          </Select>
          <Select label="Candidate version" name="candidate" value={candidate} onChange={(e) => set({ candidate: e.target.value })} disabled={!agent}>
            {versions.map((v) => (
              <option key={v} value={v}>
                {v}
              </option>
            ))}
          </Select>
          <Select label="Environment" name="environment" value={env} onChange={(e) => set({ environment: e.target.value })} disabled={!agent}>
            <option value="">All</option>
            {agent?.environments.map((e) => (
              <option key={e.environment} value={e.environment}>
                {e.environment}
              </option>
            ))}
          </Select>
          <RangeSelect defaultRange="30d" />
        </div>
        {!agent ? (
          <p className="text-sm text-slate-500">Choose an agent with at least two versions.</p>
        ) : versions.length < 2 ? (
          <p className="text-sm text-slate-500">This agent has only one version so far.</p>
        ) : base === candidate ? (
          <p className="text-sm text-slate-500">Choose two different versions.</p>
        ) : compare.error ? (
          <ErrorState error={compare.error} retry={() => void compare.refetch()} />
        ) : compare.data ? (
          <CompareView c={compare.data} />
        ) : (
          <Loading rows={5} label="Comparing…" />
        )}
      </Card>
      <QueryView query={agents}>
        {(data) =>
          data.items.length === 0 ? (
            <Card>
              <EmptyState title="No agents yet">Agents appear here once their first run is ingested.</EmptyState>
            </Card>
          ) : (
            <div className="grid gap-4 md:grid-cols-2 xl:grid-cols-3">
              {data.items.map((a) => (
                <AgentCard
                  project={project}
                  key={a.agent_id}
                  agent={a}
                  onCompare={(id) => {
                    set({ agent: id, base: null, candidate: null, environment: null });
                    document.getElementById("compare")?.scrollIntoView({ behavior: "smooth" });
                  }}
                />
              ))}
            </div>
          )
        }
      </QueryView>
    </>
  );
}
