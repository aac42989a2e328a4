// The run filters, kept in the URL (see lib/filters.ts). Selects apply at once; text fields on Enter
// or when they lose focus, so typing does not reload the list at every keystroke.
import { useEffect, useState } from "react";
import { useSearchParams } from "react-router";
import { useAgents } from "../api/hooks";
import { DEFAULT_RANGE, filtersFromSearch, type FilterKey, type RangePreset, withFilter } from "../lib/filters";
import { FAILURE_TYPES, RUN_STATUSES } from "../lib/palette";
import { Button, Select, TextInput } from "./ui";

export const RANGE_LABELS: Record<RangePreset, string> = {
  "1h": "Last hour",
  "24h": "Last 24 hours",
  "7d": "Last 7 days",
  "30d": "Last 30 days",
  all: "All time",
};

export function RangeSelect({ defaultRange = DEFAULT_RANGE }: { defaultRange?: RangePreset }) {
  const [params, setParams] = useSearchParams();
  const f = filtersFromSearch(params, defaultRange);
  const custom = Boolean(f.since || f.until);
  return (
    <Select
      label="Time range"
      value={custom ? "custom" : f.range}
      onChange={(e) => setParams(withFilter(params, "range", e.target.value === defaultRange ? undefined : e.target.value))}
    >
      {custom && <option value="custom">Custom</option>}
      {(Object.keys(RANGE_LABELS) as RangePreset[]).map((r) => (
        <option key={r} value={r}>
          {RANGE_LABELS[r]}
        </option>
      ))}
    </Select>
  );
}

function CommitInput({ name, label, placeholder }: { name: FilterKey; label: string; placeholder?: string }) {
  const [params, setParams] = useSearchParams();
  const current = params.get(name) ?? "";
  const [value, setValue] = useState(current);
  useEffect(() => setValue(current), [current]);
  const commit = () => {
    if (value.trim() !== current) setParams(withFilter(params, name, value.trim() || undefined));
  };
  return (
    <TextInput
      label={label}
      name={name}
      value={value}
      placeholder={placeholder}
      onChange={(e) => setValue(e.target.value)}
      onBlur={commit}
      onKeyDown={(e) => {
        if (e.key === "Enter") commit();
      }}
      className="w-36"
    />
  );
}

function FilterSelect({ name, label, options }: { name: FilterKey; label: string; options: string[] }) {
  const [params, setParams] = useSearchParams();
  const value = params.get(name) ?? "";
  const all = value && !options.includes(value) ? [value, ...options] : options;
  return (
    <Select label={label} name={name} value={value} onChange={(e) => setParams(withFilter(params, name, e.target.value || undefined))}>
      <option value="">Any</option>
      {all.map((o) => (
        <option key={o} value={o}>
          {o}
        </option>
      ))}
    </Select>
  );
}

/** Filters for the runs list: identity selects come from /v1/agents, so they offer what exists. */
export function FilterBar({ fields = "all" }: { fields?: "all" | "identity" }) {
  const [params, setParams] = useSearchParams();
  const f = filtersFromSearch(params);
  const agents = useAgents(f.project);
  const agentList = agents.data?.items ?? [];
  const agent = agentList.find((a) => a.agent_id === f.agent_id);
  const versions = agent ? agent.versions.map((v) => v.agent_version) : [...new Set(agentList.flatMap((a) => a.versions.map((v) => v.agent_version)))];
  const envs = [...new Set((agent ? [agent] : agentList).flatMap((a) => a.environments.map((e) => e.environment)))];
  const active = [...params.keys()].some((k) => k !== "cursor" && k !== "range" && k !== "project");
  return (
    <div className="flex flex-wrap items-end gap-3" role="search" aria-label="Run filters">
      <RangeSelect />
      <FilterSelect name="agent_id" label="Agent" options={agentList.map((a) => a.agent_id)} />
      <FilterSelect name="agent_version" label="Version" options={versions} />
      <FilterSelect name="environment" label="Environment" options={envs} />
      {fields === "all" && (
        <>
          <FilterSelect name="status" label="Status" options={[...RUN_STATUSES]} />
          <FilterSelect name="failure_type" label="Failure type" options={[...FAILURE_TYPES]} />
          <CommitInput name="failure_code" label="Failure code" placeholder="e.g. timeout" />
          <CommitInput name="step_name" label="Step name" placeholder="e.g. billing_api" />
        </>
      )}
      {active && (
        <Button
          variant="ghost"
          onClick={() => {
            // Clearing filters keeps the time range and the project (the switcher's choice).
            const kept = new URLSearchParams();
            for (const k of ["range", "project"]) if (params.get(k)) kept.set(k, params.get(k)!);
            setParams(kept);
          }}
        >
          Clear filters
        </Button>
      )}
    </div>
  );
}
