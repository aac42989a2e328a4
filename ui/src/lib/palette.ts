// The colours that carry meaning across views: step types, run statuses, failure types.
// Tailwind classes for HTML, hex values for the SVG charts; both readable in light and dark.

export const STEP_TYPES = ["plan", "retrieval", "tool", "llm", "respond", "other"] as const;
export const RUN_STATUSES = ["running", "success", "failure", "partial"] as const;
export const FAILURE_TYPES = ["tool", "model", "retrieval", "orchestration"] as const;

export const STEP_TYPE_HEX: Record<string, string> = {
  plan: "#8b5cf6",
  retrieval: "#0ea5e9",
  tool: "#f59e0b",
  llm: "#10b981",
  respond: "#6366f1",
  other: "#64748b",
};

export const STEP_TYPE_CLASS: Record<string, string> = {
  plan: "bg-violet-500",
  retrieval: "bg-sky-500",
  tool: "bg-amber-500",
  llm: "bg-emerald-500",
  respond: "bg-indigo-500",
  other: "bg-slate-500",
};

export const STATUS_HEX: Record<string, string> = {
  success: "#16a34a",
  failure: "#dc2626",
  partial: "#d97706",
  running: "#2563eb",
};

export const FAILURE_TYPE_HEX: Record<string, string> = {
  tool: "#f59e0b",
  model: "#10b981",
  retrieval: "#0ea5e9",
  orchestration: "#a855f7",
};

export function stepTypeHex(t: string): string {
  return STEP_TYPE_HEX[t] ?? STEP_TYPE_HEX.other!;
}
