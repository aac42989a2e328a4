// Routes of the dashboard. Deep links work because the :3000 server falls back to index.html.
import { Link, Route, Routes } from "react-router";
import { Layout } from "./components/Layout";
import { EmptyState } from "./components/states";
import { AgentsPage } from "./pages/AgentsPage";
import { FailuresPage } from "./pages/FailuresPage";
import { OverviewPage } from "./pages/OverviewPage";
import { RunDetailPage } from "./pages/RunDetailPage";
import { RunsPage } from "./pages/RunsPage";

export function App() {
  return (
    <Layout>
      <Routes>
        <Route path="/" element={<RunsPage />} />
        <Route path="/runs" element={<RunsPage />} />
        <Route path="/runs/:runId" element={<RunDetailPage />} />
        <Route path="/overview" element={<OverviewPage />} />
        <Route path="/failures" element={<FailuresPage />} />
        <Route path="/agents" element={<AgentsPage />} />
        <Route
          path="*"
          element={
            <EmptyState title="This page does not exist">
              <Link to="/" className="text-sky-700 underline dark:text-sky-400">
                Back to the runs
              </Link>
            </EmptyState>
          }
        />
      </Routes>
    </Layout>
  );
}
