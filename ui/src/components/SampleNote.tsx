// Says when the per-step numbers of /v1/stats cover only the newest runs (the API reports it).
import type { Stats } from "../api/types";
import { formatCount } from "../lib/format";

export function SampleNote({ stats }: { stats: Stats }) {
  if (!stats.steps_sampled) return null;
  return (
    <p className="mt-3 text-xs text-slate-500 dark:text-slate-400">
      Per-step numbers cover the newest {formatCount(stats.step_sample_runs)} of {formatCount(stats.total_runs)} matching runs.
    </p>
  );
}

