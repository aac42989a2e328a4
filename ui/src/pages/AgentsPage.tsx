import { PageHeader } from "../components/ui";

export function AgentsPage() {
  return <PageHeader title="Agents" subtitle="Coming with /v1/stats." />;
}
