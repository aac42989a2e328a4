"""Rich renderings of ``GET /v1/stats`` and ``GET /v1/compare`` for the CLI's ``stats`` and ``compare``.

They read the JSON shapes of server/wire/analytics.py's StatsResponse and CompareResponse with ``.get`` so that a newer
server's extra fields never break an older CLI; ``--json`` gives the whole response.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from agenttracer.cli.query_render import fmt_ms

SPARK = "▁▂▃▄▅▆▇█"
SHARE_BAR_WIDTH = 20
VERDICT_TEXT = {
    "significant": ("significant", "bold yellow"),
    "not_significant": ("no clear difference", "dim"),
    "insufficient_data": ("too few runs to tell", "dim italic"),
}


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _signed(value: float | None, fmt: Any) -> str:
    if value is None:
        return "—"
    text = fmt(abs(value))
    return f"+{text}" if value > 0 else (f"-{text}" if value < 0 else text)


def _verdict(test: dict[str, Any] | None) -> Text:
    if not test:
        return Text("—", style="dim")
    label, style = VERDICT_TEXT.get(test.get("verdict", ""), (test.get("verdict", "?"), ""))
    text = Text(label, style=style)
    if test.get("p_value") is not None:
        text.append(f" (p={test['p_value']:.2g})", style="dim")
    return text


def _table(*columns: str, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_edge=False, header_style="bold")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    return table


def _percentiles(p: dict[str, Any] | None) -> tuple[str, str, str]:
    p = p or {}
    return fmt_ms(p.get("p50")), fmt_ms(p.get("p95")), fmt_ms(p.get("p99"))


def _spark(values: list[int]) -> str:
    top = max(values, default=0)
    if top == 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values)


def stats_view(data: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = []
    counts = data.get("status_counts", {})
    head = Text()
    head.append(f"{data.get('total_runs', 0)} runs", style="bold")
    head.append(f" ({data.get('finished_runs', 0)} finished, {counts.get('running', 0)} running)   ")
    head.append(f"success {pct(data.get('success_rate'))}", style="green")
    head.append("   ")
    head.append(f"failure {pct(data.get('failure_rate'))}", style="red")
    head.append(f"   partial {pct(data.get('partial_rate'))}", style="yellow")
    p50, p95, p99 = _percentiles(data.get("run_latency_ms"))
    head.append(f"\nrun latency  p50 {p50}   p95 {p95}   p99 {p99}")
    retries = data.get("retries") or {}
    if retries:
        head.append(
            f"\nretries      {retries.get('retry_steps', 0)} of {retries.get('total_steps', 0)} steps "
            f"({pct(retries.get('retry_rate'))}); runs with a retry {retries.get('runs_with_retries', 0)} "
            f"({pct(retries.get('run_retry_rate'))}); time in retries {fmt_ms(retries.get('time_in_retries_ms'))}"
            f" ({pct(retries.get('share_of_step_time'))} of step time)"
        )
    by_type = ", ".join(f"{f['failure_type']} {f['count']}" for f in data.get("failures_by_type", []))
    by_code = ", ".join(f"{f['failure_code']} {f['count']}" for f in data.get("failures_by_code", []))
    head.append(f"\nfailures     by type: {by_type or 'none'}   by code: {by_code or 'none'}")
    parts.append(head)

    step_types = data.get("step_types") or []
    if step_types:
        parts.append(Text(""))
        parts.append(_attribution(step_types, "latency by step type", with_name=False,
                                  run_time=data.get("run_time") or {}))
    step_names = data.get("step_names") or []
    if step_names:
        parts.append(Text(""))
        title = "latency by step (top 10)" if len(step_names) > 10 else "latency by step"
        parts.append(_attribution(step_names[:10], title, with_name=True))
    failing = data.get("top_failing_steps") or []
    if failing:
        table = _table("step", "errors", "of", "error rate", title="steps failing most")
        for f in failing:
            table.add_row(f"{f['step_type']} {f['name']}", str(f["error_count"]), str(f["count"]),
                          pct(f.get("error_rate")))
        parts += [Text(""), table]
    timeline = data.get("timeline") or {}
    points = timeline.get("points") or []
    if points:
        volume = [p.get("runs", 0) for p in points]
        line = Text(f"\nruns per {timeline.get('bucket', 'bucket')}  ")
        line.append(_spark(volume), style="cyan")
        line.append(f"  {points[0]['start']} … {points[-1]['start']} (max {max(volume)})", style="dim")
        parts.append(line)
    return Group(*parts)


def _share_bar(share: float | None, style: str = "cyan") -> Text:
    bar = Text("█" * round(min(share or 0.0, 1.0) * SHARE_BAR_WIDTH), style=style)
    bar.append(f" {pct(share)}")
    return bar


def _attribution(groups: list[dict[str, Any]], title: str, *, with_name: bool,
                 run_time: dict[str, Any] | None = None) -> Table:
    """Per group: counts, latency percentiles, total latency (children included), self time and share of
    run time (self time, so that the step types' shares and the untraced row add up to 100 %)."""
    table = _table("step" if with_name else "type", "count", "errors", "retries", "p50", "p95", "p99", "total",
                   "self", "share of run time", title=title)
    for g in groups:
        label = f"{g['step_type']} {g.get('name') or ''}".strip() if with_name else g["step_type"]
        table.add_row(label, str(g.get("count", 0)), f"{g.get('error_count', 0)} ({pct(g.get('error_rate'))})",
                      str(g.get("retry_count", 0)), *_percentiles(g.get("latency_ms")),
                      fmt_ms(g.get("total_latency_ms")), fmt_ms(g.get("self_time_ms")),
                      _share_bar(g.get("share_of_run_time")))
    if run_time and run_time.get("untraced_share") is not None:
        table.add_row("untraced", "", "", "", "", "", "", "", fmt_ms(run_time.get("untraced_ms")),
                      _share_bar(run_time.get("untraced_share"), style="dim"))
    return table


def compare_view(data: dict[str, Any]) -> RenderableType:
    base, cand = data.get("base") or {}, data.get("candidate") or {}
    head = Text()
    head.append(f"{data.get('agent_id')}: {base.get('version')} → {cand.get('version')}", style="bold")
    scope = [f"environment {data['environment']}"] if data.get("environment") else []
    if data.get("since") or data.get("until"):
        scope.append(f"{data.get('since') or '…'} to {data.get('until') or 'now'}")
    if scope:
        head.append("  (" + ", ".join(scope) + ")")
    head.append(f"\nfinished runs: base {base.get('runs', 0)}, candidate {cand.get('runs', 0)}"
                f"   (tests at alpha {data.get('alpha')}, at least {data.get('min_sample')} runs per side)")
    parts: list[RenderableType] = [head, Text("")]

    table = _table("metric", "base", "candidate", "delta", "verdict")
    for key, label in (("success_rate", "success rate"), ("failure_rate", "failure rate"),
                       ("retry_rate", "retry rate (steps)"), ("run_retry_rate", "runs with a retry")):
        d = data.get(key) or {}
        table.add_row(label, pct(d.get("base")), pct(d.get("candidate")),
                      _signed(d.get("delta"), lambda v: f"{v * 100:.1f} pts"), _verdict(d.get("test")))
    steps = data.get("steps_per_run") or {}
    table.add_row("steps per run", _num(steps.get("base")), _num(steps.get("candidate")),
                  _signed(steps.get("delta"), _num), _verdict(steps.get("test")))
    lat = data.get("run_latency_ms") or {}
    for i, pname in enumerate(("p50", "p95", "p99")):
        table.add_row(f"run latency {pname}", fmt_ms((lat.get("base") or {}).get(pname)),
                      fmt_ms((lat.get("candidate") or {}).get(pname)),
                      _signed((lat.get("delta") or {}).get(pname), fmt_ms),
                      _verdict(lat.get("test")) if i == 0 else Text(""))
    parts.append(table)

    mix = data.get("failure_mix") or []
    if mix:
        t = _table("failure", "base", "candidate", "delta", "verdict", title="failure mix (share of runs)")
        for row in mix:
            r = row.get("rate") or {}
            t.add_row(f"{row['failure_type']}/{row['failure_code']}",
                      f"{row.get('base_count', 0)} ({pct(r.get('base'))})",
                      f"{row.get('candidate_count', 0)} ({pct(r.get('candidate'))})",
                      _signed(r.get("delta"), lambda v: f"{v * 100:.1f} pts"), _verdict(r.get("test")))
        parts += [Text(""), t]

    types = data.get("step_types") or []
    if types:
        t = _table("step type", "p50 base → cand", "Δ p50", "latency", "error rate base → cand", "errors",
                   title="per step type")
        for row in types:
            lat_t, err = row.get("latency_ms") or {}, row.get("error_rate") or {}
            base_p50, cand_p50 = (lat_t.get("base") or {}).get("p50"), (lat_t.get("candidate") or {}).get("p50")
            t.add_row(row["step_type"], f"{fmt_ms(base_p50)} → {fmt_ms(cand_p50)}",
                      _signed((lat_t.get("delta") or {}).get("p50"), fmt_ms), _verdict(lat_t.get("test")),
                      f"{pct(err.get('base'))} → {pct(err.get('candidate'))}", _verdict(err.get("test")))
        parts += [Text(""), t]

    shapes = data.get("shapes") or []
    if shapes:
        t = _table("run shape", "base", "candidate", "delta", "verdict", title="most common run shapes")
        for row in shapes:
            s = row.get("share") or {}
            t.add_row(" → ".join(row.get("shape") or []) or "(no steps)", pct(s.get("base")),
                      pct(s.get("candidate")), _signed(s.get("delta"), lambda v: f"{v * 100:.1f} pts"),
                      _verdict(s.get("test")))
        parts += [Text(""), t]

    significant = data.get("significant") or []
    summary = Text("\n")
    if significant:
        summary.append("significant differences: ", style="bold yellow")
        summary.append(", ".join(significant))
    elif _all_insufficient(data):
        summary.append("too few runs to tell: each version needs more finished runs before any difference "
                       "can be called significant", style="bold")
    else:
        summary.append("no significant differences", style="bold green")
    parts.append(summary)
    return Group(*parts)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _all_insufficient(data: dict[str, Any]) -> bool:
    tests = [(data.get(k) or {}).get("test") for k in ("success_rate", "run_latency_ms", "steps_per_run")]
    return all(t is None or t.get("verdict") == "insufficient_data" for t in tests)
