// The project switcher: the projects the key may read (GET /v1/projects), kept in the URL's `project`
// parameter so a link to a view is a link to that view of that project.
import { useSearchParams } from "react-router";
import { useProjects } from "../api/hooks";
import { withFilter } from "../lib/filters";

export function ProjectSwitcher() {
  const [params, setParams] = useSearchParams();
  const projects = useProjects();
  const items = projects.data?.items ?? [];
  const current = params.get("project") ?? "";
  if (items.length === 0) return null;
  return (
    <label className="flex items-center gap-1.5 text-xs text-slate-500 dark:text-slate-400">
      Project
      <select
        data-testid="project-switcher"
        value={current}
        onChange={(e) => setParams(withFilter(params, "project", e.target.value || undefined))}
        className="rounded-md border border-slate-300 bg-white px-2 py-1 text-sm text-slate-800 dark:border-slate-700 dark:bg-slate-900 dark:text-slate-100"
      >
        <option value="">{items.length > 1 ? "All projects" : items[0]!.slug}</option>
        {items.length > 1 &&
          items.map((p) => (
            <option key={p.slug} value={p.slug}>
              {p.slug}
            </option>
          ))}
      </select>
    </label>
  );
}
