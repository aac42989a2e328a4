import { PageHeader } from "../components/ui";

export function FailuresPage() {
  return <PageHeader title="Failures" subtitle="Coming with /v1/stats." />;
}
