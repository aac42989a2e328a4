// The significance marker next to a compared metric (see lib/compare.ts for the rules).
import type { Significance } from "../api/types";
import { type Better, significanceMarker } from "../lib/compare";
import { cx } from "./ui";

const STYLE = {
  better: "bg-green-100 text-green-800 dark:bg-green-900/50 dark:text-green-300",
  worse: "bg-red-100 text-red-800 dark:bg-red-900/50 dark:text-red-300",
  changed: "bg-sky-100 text-sky-800 dark:bg-sky-900/50 dark:text-sky-300",
  same: "bg-slate-100 text-slate-600 dark:bg-slate-800 dark:text-slate-300",
  unknown: "bg-transparent text-slate-500 italic dark:text-slate-400",
} as const;

const ICON = { better: "▲", worse: "▼", changed: "◆", same: "≈", unknown: "?" } as const;

export function SignificanceMarker({ delta, test, better }: { delta: number | null; test: Significance | null; better: Better }) {
  const m = significanceMarker(delta, test, better);
  return (
    <span className={cx("inline-flex items-center gap-1 whitespace-nowrap rounded px-1.5 py-0.5 text-xs font-medium", STYLE[m.kind])} title={m.title} data-significance={m.kind}>
      <span aria-hidden>{ICON[m.kind]}</span>
      {m.label}
      <span className="sr-only">. {m.title}</span>
    </span>
  );
}
