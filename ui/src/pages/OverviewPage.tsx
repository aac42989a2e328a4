import { PageHeader } from "../components/ui";

export function OverviewPage() {
  return <PageHeader title="Overview" subtitle="Coming with /v1/stats." />;
}
