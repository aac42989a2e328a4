// Routes of the dashboard. Deep links work because the :3000 server falls back to index.html.
import { lazy, Suspense } from "react";
import { Link, Route, Routes } from "react-router";
import { Layout } from "./components/Layout";
import { EmptyState, Loading } from "./components/states";
import { RunDetailPage } from "./pages/RunDetailPage";
import { RunsPage } from "./pages/RunsPage";

// The chart views load Recharts on first visit, so the runs list and run detail start faster.
const OverviewPage = lazy(() => import("./pages/OverviewPage").then((m) => ({ default: m.OverviewPage })));
const FailuresPage = lazy(() => import("./pages/FailuresPage").then((m) => ({ default: m.FailuresPage })));
const AgentsPage = lazy(() => import("./pages/AgentsPage").then((m) => ({ default: m.AgentsPage })));

export function App() {
  return (
    <Layout>
      <Suspense fallback={<Loading rows={6} />}>
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
      </Suspense>
    </Layout>
  );
}
