// Chart building blocks on Recharts, sized and coloured for both themes.
import type { ReactNode } from "react";
import { formatCount } from "../lib/format";

export const AXIS = { stroke: "currentColor", fontSize: 12, tickLine: false } as const;
export const GRID = "rgba(148,163,184,0.25)";
export const TOOLTIP_STYLE = { borderRadius: 6, fontSize: 12 } as const;

export function ChartBox({ label, children, height = 240 }: { label: string; children: ReactNode; height?: number }) {
  return (
    <div role="img" aria-label={label} style={{ height }} className="text-slate-500 dark:text-slate-400">
      {children}
    </div>
  );
}

/** Bucket label: "14:00" for hourly buckets, "11-24" for daily ones (local time). */
export function bucketLabel(iso: string, bucket: string): string {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return bucket === "hour" ? `${pad(d.getHours())}:00` : `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export function countTick(v: number): string {
  return formatCount(v);
}
