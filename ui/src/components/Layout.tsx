// The frame around every view: navigation, the Query API's health, and the theme switch.
import type { ReactNode } from "react";
import { NavLink, useSearchParams } from "react-router";
import { useHealth } from "../api/hooks";
import { ApiError, queryUrl } from "../api/client";
import { useTheme } from "../lib/theme";
import { AuthDialog } from "./AuthDialog";
import { ProjectSwitcher } from "./ProjectSwitcher";
import { cx } from "./ui";

const NAV = [
  { to: "/", label: "Runs", end: true },
  { to: "/overview", label: "Overview" },
  { to: "/failures", label: "Failures" },
  { to: "/agents", label: "Agents & versions" },
];

function HealthDot() {
  const health = useHealth();
  const ok = health.data?.status === "ok";
  // /health answers 503 when the Query API runs but cannot read its database.
  const dbDown = health.data !== undefined || (health.error instanceof ApiError && health.error.status === 503);
  const label = health.isPending ? "checking" : ok ? "connected" : dbDown ? "database unavailable" : "unreachable";
  return (
    <span
      className="flex items-center gap-1.5 text-xs text-slate-500 dark:text-slate-400"
      title={`Query API at ${queryUrl()}: ${label}`}
      data-health={label}
    >
      <span
        aria-hidden
        className={cx("h-2 w-2 rounded-full", health.isPending ? "bg-slate-400" : ok ? "bg-green-500" : "bg-red-500")}
      />
      <span className="hidden sm:inline">Query API {label}</span>
    </span>
  );
}

export function Layout({ children }: { children: ReactNode }) {
  const [theme, toggleTheme] = useTheme();
  // The chosen project follows the user from view to view.
  const [params] = useSearchParams();
  const project = params.get("project");
  const keep = project ? `?project=${encodeURIComponent(project)}` : "";
  return (
    <div className="min-h-screen">
      <a
        href="#main"
        className="sr-only focus:not-sr-only focus:fixed focus:left-2 focus:top-2 focus:z-50 focus:rounded focus:bg-white focus:px-3 focus:py-2 focus:text-sm dark:focus:bg-slate-900"
      >
        Skip to content
      </a>
      <header className="sticky top-0 z-40 border-b border-slate-200 bg-white/90 backdrop-blur dark:border-slate-800 dark:bg-slate-950/90">
        <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-x-6 gap-y-2 px-4 py-2.5">
          <NavLink to="/" className="flex items-center gap-2 font-semibold tracking-tight">
            <svg viewBox="0 0 24 24" className="h-5 w-5 text-sky-600" aria-hidden fill="none" stroke="currentColor" strokeWidth="2">
              <path d="M4 6h10M4 12h16M4 18h7" strokeLinecap="round" />
            </svg>
            AgentTracer
          </NavLink>
          <nav aria-label="Main" className="flex flex-wrap gap-1">
            {NAV.map((n) => (
              <NavLink
                key={n.to}
                to={n.to + keep}
                end={n.end}
                className={({ isActive }) =>
                  cx(
                    "rounded-md px-2.5 py-1.5 text-sm font-medium",
                    isActive
                      ? "bg-sky-50 text-sky-700 dark:bg-sky-950 dark:text-sky-300"
                      : "text-slate-600 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800",
                  )
                }
              >
                {n.label}
              </NavLink>
            ))}
          </nav>
          <div className="ml-auto flex items-center gap-3">
            <ProjectSwitcher />
            <HealthDot />
            <button
              type="button"
              onClick={toggleTheme}
              className="rounded-md p-1.5 text-slate-600 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800"
              aria-label={theme === "dark" ? "Switch to light theme" : "Switch to dark theme"}
              title={theme === "dark" ? "Light theme" : "Dark theme"}
            >
              {theme === "dark" ? (
                <svg viewBox="0 0 24 24" className="h-4 w-4" fill="none" stroke="currentColor" strokeWidth="2" aria-hidden>
                  <circle cx="12" cy="12" r="4" />
                  <path d="M12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4" />
                </svg>
              ) : (
                <svg viewBox="0 0 24 24" className="h-4 w-4" fill="none" stroke="currentColor" strokeWidth="2" aria-hidden>
                  <path d="M21 12.8A9 9 0 1 1 11.2 3a7 7 0 0 0 9.8 9.8z" />
                </svg>
              )}
            </button>
          </div>
        </div>
      </header>
      <main id="main" className="mx-auto max-w-7xl px-4 py-6">
        {children}
      </main>
      <AuthDialog />
    </div>
  );
}
