// The Query API's types, taken from the schema generated from its OpenAPI (`make api-types` rewrites
// openapi.json and schema.d.ts; a test checks that both are up to date). Never edit by hand.
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

export type RunSummary = Schemas["RunSummary"];
export type Step = Schemas["StepOut"];
export type Failure = Schemas["FailureOut"];
export type RunDetail = Schemas["RunDetail"];
export type RunPage = Schemas["RunPage"];
export type Agent = Schemas["AgentOut"];
export type AgentVersion = Schemas["AgentVersionOut"];
export type AgentEnvironment = Schemas["AgentEnvironmentOut"];
export type AgentList = Schemas["AgentList"];
export type Health = Schemas["HealthOut"];
export type Project = Schemas["ProjectOut"];
export type ProjectList = Schemas["ProjectList"];
export type RunStatus = Schemas["RunStatus"];
export type StepType = Schemas["StepType"];
export type Meta = RunSummary["meta"];

/** The query parameters /v1/runs accepts (the filters every read endpoint shares). */
export type RunsQuery = NonNullable<paths["/v1/runs"]["get"]["parameters"]["query"]>;

export type Stats = Schemas["StatsResponse"];
export type FailureCount = Schemas["FailureCountOut"];
export type FailingStep = Schemas["FailingStepOut"];
export type StepGroup = Schemas["StepGroupOut"];
export type TimeBucket = Schemas["TimeBucketOut"];
export type Percentiles = Schemas["LatencyPercentiles"];
export type Compare = Schemas["CompareResponse"];
export type Delta = Schemas["DeltaOut"];
export type PercentileDelta = Schemas["PercentileDeltaOut"];
export type Significance = Schemas["SignificanceOut"];
export type CompareQuery = paths["/v1/compare"]["get"]["parameters"]["query"];
