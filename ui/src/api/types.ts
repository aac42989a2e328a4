// PROVISIONAL: hand-written until the Query API's OpenAPI is on main; then these become aliases of the
// generated `components["schemas"]` in schema.d.ts.

export type RunStatus = "running" | "success" | "failure" | "partial";
export type StepType = "plan" | "retrieval" | "tool" | "llm" | "respond" | "other";
export type Meta = Record<string, string | number | boolean | null>;

export interface RunSummary {
  run_id: string;
  agent_id: string | null;
  agent_version: string | null;
  environment: string | null;
  status: RunStatus;
  started_at: string | null;
  ended_at: string | null;
  duration_ms: number | null;
  step_count: number;
  error_step_count: number;
  retry_count: number;
  failure_type: string | null;
  failure_code: string | null;
  meta: Meta;
  meta_removed: number;
}

export interface Step {
  seq: number;
  step_type: StepType;
  name: string;
  status: "ok" | "error";
  started_at: string;
  ended_at: string;
  latency_ms: number;
  attempt: number;
  retry_of_seq: number | null;
  parent_seq: number | null;
  error_class: string | null;
  failure_code: string | null;
  meta: Meta;
  meta_removed: number;
}

export interface Failure {
  failure_type: string;
  failure_code: string;
  step_seq: number | null;
  message: string | null;
  recorded_at: string;
}

export interface RunDetail {
  run: RunSummary;
  steps: Step[];
  failure: Failure | null;
}

export interface RunPage {
  items: RunSummary[];
  next_cursor: string | null;
}

export interface AgentVersion {
  agent_version: string;
  run_count: number;
  last_seen: string | null;
}

export interface AgentEnvironment {
  environment: string;
  run_count: number;
  last_seen: string | null;
}

export interface Agent {
  agent_id: string;
  run_count: number;
  last_seen: string | null;
  versions: AgentVersion[];
  environments: AgentEnvironment[];
}

export interface AgentList {
  items: Agent[];
}

export interface Health {
  status: string;
  database: string;
  backend: string;
  detail?: string | null;
}
