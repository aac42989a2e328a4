"""Rich renderings for the CLI's read commands: the runs table and the step waterfall.

Functions take the Query API's JSON (as dicts) and return Rich renderables; the commands print them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"success": "green", "failure": "bold red", "partial": "yellow", "running": "cyan",
                "ok": "green", "error": "red"}
WATERFALL_WIDTH = 40


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.1f} min"


def fmt_time(value: str | None) -> str:
    t = _time(value)
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "—"


def status_text(status: str | None) -> Text:
    return Text(status or "—", style=STATUS_STYLE.get(status or "", ""))


def runs_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title=None, show_edge=False, header_style="bold")
    for col in ("started (UTC)", "run_id", "project", "agent", "version", "env", "status", "duration", "steps",
                "err", "retries", "failure"):
        table.add_column(col, no_wrap=col in ("run_id", "started (UTC)"),
                         justify="right" if col in ("duration", "steps", "err", "retries") else "left")
    for run in items:
        failure = f"{run['failure_type']}/{run['failure_code']}" if run.get("failure_type") else ""
        table.add_row(
            fmt_time(run.get("started_at")), run["run_id"], run.get("project") or "?", run.get("agent_id") or "?",
            run.get("agent_version") or "?", run.get("environment") or "?", status_text(run.get("status")),
            fmt_ms(run.get("duration_ms")), str(run.get("step_count", 0)), str(run.get("error_step_count", 0)),
            str(run.get("retry_count", 0)), failure,
        )
    return table


def run_header(run: dict[str, Any], failure: dict[str, Any] | None) -> Text:
    text = Text()
    text.append(f"run {run['run_id']}\n", style="bold")
    text.append(f"  project {run.get('project') or '?'}\n")
    text.append(f"  agent   {run.get('agent_id') or '?'} {run.get('agent_version') or '?'}"
                f"  ({run.get('environment') or '?'})\n")
    text.append("  status  ")
    text.append_text(status_text(run.get("status")))
    text.append(f"   started {fmt_time(run.get('started_at'))} UTC   duration {fmt_ms(run.get('duration_ms'))}\n")
    text.append(f"  steps   {run.get('step_count', 0)}   errors {run.get('error_step_count', 0)}"
                f"   retries {run.get('retry_count', 0)}")
    if run.get("meta"):
        text.append("\n  meta    " + ", ".join(f"{k}={v}" for k, v in sorted(run["meta"].items())))
    if failure:
        text.append("\n  failure ", style="bold red")
        where = f" at step #{failure['step_seq']}" if failure.get("step_seq") is not None else ""
        text.append(f"{failure['failure_type']}/{failure['failure_code']}{where}", style="bold red")
        if failure.get("message"):
            text.append(f" — {failure['message']}")
    return text


def _bar(start: float, end: float, t0: float, span: float, width: int) -> tuple[int, int]:
    lo = int((start - t0) / span * width) if span > 0 else 0
    hi = round((end - t0) / span * width) if span > 0 else width
    lo = min(max(lo, 0), width - 1)
    return lo, max(hi, lo + 1)


def waterfall(detail: dict[str, Any], width: int = WATERFALL_WIDTH) -> RenderableType:
    """The run's steps as bars on one time axis, retries linked to their attempts, the failing step marked."""
    run, steps, failure = detail["run"], detail["steps"], detail.get("failure")
    header = run_header(run, failure)
    if not steps:
        return Group(header, Text("\n  (no steps recorded)"))
    starts = [_time(s["started_at"]) for s in steps]
    ends = [_time(s["ended_at"]) for s in steps]
    run_start, run_end = _time(run.get("started_at")), _time(run.get("ended_at"))
    t0 = min([t for t in [run_start, *starts] if t is not None]).timestamp()
    t1 = max([t for t in [run_end, *ends] if t is not None]).timestamp()
    span = t1 - t0
    failing_seq = failure.get("step_seq") if failure else None
    retried_by: dict[int, int] = {s["retry_of_seq"]: s["seq"] for s in steps if s.get("retry_of_seq") is not None}
    depth: dict[int, int] = {}

    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("type")
    table.add_column("name")
    table.add_column("status")
    table.add_column("latency", justify="right")
    table.add_column(f"0 {'─' * (width - len(fmt_ms(span * 1000)) - 3)} {fmt_ms(span * 1000)}", no_wrap=True)
    table.add_column("notes")
    for step, start, end in zip(steps, starts, ends, strict=True):
        seq = step["seq"]
        depth[seq] = depth.get(step["parent_seq"], -1) + 1 if step.get("parent_seq") is not None else 0
        lo, hi = _bar(start.timestamp() if start else t0, end.timestamp() if end else t1, t0, span, width)
        is_error = step.get("status") == "error"
        bar = Text(" " * lo)
        bar.append("█" * (hi - lo), style="red" if is_error else "green")
        bar.append(" " * max(width - hi, 0))
        notes = Text()
        if step.get("retry_of_seq") is not None:
            notes.append(f"↻ attempt {step.get('attempt')}, retries #{step['retry_of_seq']} ", style="magenta")
        if seq in retried_by:
            notes.append(f"→ retried by #{retried_by[seq]} ", style="magenta")
        if is_error:
            err = "/".join(x for x in (step.get("error_class"), step.get("failure_code")) if x)
            notes.append(f"{err} ", style="red")
        if seq == failing_seq:
            notes.append("✖ caused the run's failure", style="bold red")
        table.add_row(
            str(seq), step["step_type"], "  " * depth[seq] + step["name"], status_text(step.get("status")),
            fmt_ms(step.get("latency_ms")), bar, notes,
        )
    return Group(header, Text(""), table)
