"""CLI read commands over the Query API: ``runs``, ``show``, ``stats``, ``compare``, ``tail``.

They talk HTTP to a running Query API (``--url``, default http://localhost:8001) rather than to the
database, so they work against a remote deployment with a read key exactly as they do locally.
Every command has ``--json`` for scripts; errors print one clear line and exit with status 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from agenttracer.cli import analytics_render
from agenttracer.cli import query_render as render
from agenttracer.cli.app import app
from agenttracer.cli.query_client import DEFAULT_QUERY_URL, NotFound, QueryClient, QueryError, parse_time

T = TypeVar("T")

SHOW_STEPS = 500  # steps `show` prints by default: a terminal waterfall longer than this is not read
STEP_PAGE_SIZE = 1000  # the Query API's largest page of steps

UrlOpt = Annotated[
    str, typer.Option("--url", envvar="AGENTTRACER_QUERY_URL", help="Query API base URL.", show_default=True)
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="AGENTTRACER_API_KEY", help="Read API key (sent as a Bearer token).",
                 show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
AgentOpt = Annotated[str | None, typer.Option("--agent", help="Only this agent_id.")]
VersionOpt = Annotated[str | None, typer.Option("--version", help="Only this agent_version.")]
EnvOpt = Annotated[str | None, typer.Option("--env", help="Only this environment.")]
StatusOpt = Annotated[str | None, typer.Option("--status", help="success | failure | partial | running.")]
FTypeOpt = Annotated[str | None, typer.Option("--failure-type", help="tool | model | retrieval | orchestration.")]
FCodeOpt = Annotated[str | None, typer.Option("--failure-code", help="e.g. timeout, rate_limited.")]
StepOpt = Annotated[str | None, typer.Option("--step-name", help="Runs with a step of this name.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="ISO time or age (15m, 2h, 7d).")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="ISO time or age (15m, 2h, 7d).")]
ProjectOpt = Annotated[
    str | None,
    typer.Option("--project", envvar="AGENTTRACER_PROJECT",
                 help="Only this project (default: every project the key may read)."),
]



def _console(stderr: bool = False) -> Console:
    """A console made at print time, so it sees the streams and environment the command runs with."""
    # Piped output (scripts, CI logs) gets a wide fixed width instead of Rich's 80 columns, so the
    # waterfall and the runs table are not squeezed; a terminal's own width wins, as does COLUMNS.
    probe = Console(stderr=stderr)
    wide = not probe.is_terminal and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=180 if wide else None)



def _fail(message: str) -> typer.Exit:
    _console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


@contextmanager
def _client(url: str, api_key: str | None) -> Iterator[QueryClient]:
    client = QueryClient(url, api_key)
    try:
        yield client
    except QueryError as exc:
        raise _fail(str(exc)) from None
    finally:
        client.close()


def _print_json(data: Any) -> None:
    # Plain stdout, no Rich markup or wrapping: scripts parse this.
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def _filters(
    agent: str | None, version: str | None, env: str | None, status: str | None, failure_type: str | None,
    failure_code: str | None, step_name: str | None, since: str | None, until: str | None, project: str | None,
) -> dict[str, Any]:
    return {
        "project": project, "agent_id": agent, "agent_version": version, "environment": env, "status": status,
        "failure_type": failure_type, "failure_code": failure_code, "step_name": step_name,
        "since": parse_time(since, option="--since"), "until": parse_time(until, option="--until"),
    }


@app.command("runs")
def runs_cmd(
    agent: AgentOpt = None, version: VersionOpt = None, env: EnvOpt = None, status: StatusOpt = None,
    failure_type: FTypeOpt = None, failure_code: FCodeOpt = None, step_name: StepOpt = None,
    since: SinceOpt = None, until: UntilOpt = None, project: ProjectOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="How many runs to list.")] = 20,
    url: UrlOpt = DEFAULT_QUERY_URL, api_key: KeyOpt = None, as_json: JsonOpt = False,
) -> None:
    """List runs, newest first, filtered like the API."""
    with _client(url, api_key) as client:
        params = _filters(agent, version, env, status, failure_type, failure_code, step_name, since, until, project)
        items: list[dict[str, Any]] = []
        cursor = None
        while len(items) < limit:
            page = client.get("/v1/runs", {**params, "limit": min(limit - len(items), 500), "cursor": cursor})
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    if as_json:
        _print_json({"items": items, "next_cursor": cursor})
    elif not items:
        _console().print("no runs match")
    else:
        _console().print(render.runs_table(items))
        if cursor is not None:
            _console().print(f"[dim]showing the newest {len(items)}; raise --limit for more[/]")


@app.command("show")
def show_cmd(
    run_id: Annotated[str, typer.Argument(help="The run's UUID, or the start of it (at least 4 hex digits) if no other "
                                          "run's id starts the same way.")],
    url: UrlOpt = DEFAULT_QUERY_URL, api_key: KeyOpt = None, as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many steps.")] = SHOW_STEPS,
    after: Annotated[int, typer.Option("--after", min=0, help="Start after this step seq.")] = 0,
    project: ProjectOpt = None,
) -> None:
    """Show one run and its steps as a waterfall (retries linked, the failing step marked).

    Steps come from the API page by page until --limit are shown; the run's totals always cover the
    whole run, and a note says how to see the steps that were left out.
    """
    with _client(url, api_key) as client:
        try:
            detail = _run_pages(client, run_id, after, limit, project)
        except NotFound:
            raise _fail(f"run {run_id} does not exist on {client.url}") from None
    if as_json:
        _print_json(detail)
        return
    _console().print(render.waterfall(detail))
    rest = detail["next_steps_after"]
    if rest is not None:
        _console().print(
            f"[dim]showing {len(detail['steps'])} of {detail['run']['step_count']} steps; "
            f"`--after {rest}` for the next ones, or raise --limit[/]"
        )


def _run_pages(client: QueryClient, run_id: str, after: int, limit: int, project: str | None) -> dict[str, Any]:
    """The run detail with up to ``limit`` steps after seq ``after``, gathered from as many pages as needed."""

    def page(after: int, wanted: int) -> dict[str, Any]:
        params = {"project": project, "steps_after": after, "steps_limit": min(wanted, STEP_PAGE_SIZE)}
        return dict(client.get(f"/v1/runs/{run_id}", params))

    detail = page(after, limit)
    run_id = detail["run"]["run_id"]  # a prefix named the run: the following pages name it whole
    while detail["next_steps_after"] is not None and len(detail["steps"]) < limit:
        more = page(detail["next_steps_after"], limit - len(detail["steps"]))
        # Totals and failure from the newest page: the run may have grown while we paged.
        detail = {**more, "steps": detail["steps"] + more["steps"]}
    return detail


@app.command("stats")
def stats_cmd(
    agent: AgentOpt = None, version: VersionOpt = None, env: EnvOpt = None, status: StatusOpt = None,
    failure_type: FTypeOpt = None, failure_code: FCodeOpt = None, step_name: StepOpt = None,
    since: SinceOpt = None, until: UntilOpt = None, project: ProjectOpt = None,
    url: UrlOpt = DEFAULT_QUERY_URL, api_key: KeyOpt = None, as_json: JsonOpt = False,
) -> None:
    """Run counts, success rate, latency percentiles, failure mix and retries for the filtered runs."""
    with _client(url, api_key) as client:
        params = _filters(agent, version, env, status, failure_type, failure_code, step_name, since, until, project)
        data = _analytics(client, "/v1/stats", params)
    if as_json:
        _print_json(data)
    else:
        _console().print(analytics_render.stats_view(data))


@app.command("compare")
def compare_cmd(
    agent: Annotated[str, typer.Argument(help="agent_id to compare.")],
    base: Annotated[str, typer.Argument(help="Baseline agent_version.")],
    candidate: Annotated[str, typer.Argument(help="Candidate agent_version.")],
    env: EnvOpt = None, since: SinceOpt = None, until: UntilOpt = None, project: ProjectOpt = None,
    url: UrlOpt = DEFAULT_QUERY_URL, api_key: KeyOpt = None, as_json: JsonOpt = False,
) -> None:
    """Compare two versions of an agent from the execution shape alone (no content)."""
    with _client(url, api_key) as client:
        params = {"project": project, "agent_id": agent, "base": base, "candidate": candidate, "environment": env,
                  "since": parse_time(since, option="--since"), "until": parse_time(until, option="--until")}
        data = _analytics(client, "/v1/compare", params)
    if as_json:
        _print_json(data)
    else:
        _console().print(analytics_render.compare_view(data))


def _analytics(client: QueryClient, path: str, params: dict[str, Any]) -> Any:
    try:
        return client.get(path, params)
    except NotFound as exc:
        if str(exc) == "Not Found":  # the framework's answer for a route that does not exist
            raise QueryError(f"the Query API at {client.url} does not serve {path}: upgrade the server") from None
        raise QueryError(str(exc)) from None


class _Seen:
    """Run ids already reported, bounded so that a week-long tail does not grow without limit."""

    def __init__(self, cap: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._cap = cap

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._ids

    def add(self, run_id: str) -> None:
        self._ids[run_id] = None
        if len(self._ids) > self._cap:
            self._ids.popitem(last=False)


def _retrying(call: Callable[[], T], interval: float) -> T:
    """Call until it succeeds, warning once per outage and backing off up to 30 s (Ctrl-C still exits)."""
    delay, warned = interval, False
    while True:
        try:
            result = call()
        except NotFound:
            raise
        except QueryError as exc:
            if not warned:
                _console(stderr=True).print(f"[yellow]warning:[/] {exc} — retrying", highlight=False, soft_wrap=True)
                warned = True
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        if warned:
            _console(stderr=True).print("[green]reconnected[/]")
        return result


@app.command("tail")
def tail_cmd(
    agent: AgentOpt = None, version: VersionOpt = None, env: EnvOpt = None, status: StatusOpt = None,
    failure_type: FTypeOpt = None, failure_code: FCodeOpt = None, step_name: StepOpt = None,
    interval: Annotated[float, typer.Option("--interval", min=0.2, max=60, help="Seconds between polls.")] = 2.0,
    window: Annotated[int, typer.Option("--window", min=10, max=500, help="Newest runs checked per poll.")] = 200,
    history: Annotated[int, typer.Option("--history", min=0, max=500, help="Finished runs to print first.")] = 0,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Exit after this many runs.")] = None,
    duration: Annotated[float | None, typer.Option("--duration", min=0.1, help="Exit after this many seconds.")] = None,
    project: ProjectOpt = None, url: UrlOpt = DEFAULT_QUERY_URL, api_key: KeyOpt = None, as_json: JsonOpt = False,
) -> None:
    """Follow runs as they finish (one line each; Ctrl-C to stop)."""
    params = _filters(agent, version, env, status, failure_type, failure_code, step_name, None, None, project)
    seen = _Seen()
    printed = 0
    deadline = time.monotonic() + duration if duration is not None else None

    def emit(run: dict[str, Any]) -> None:
        if as_json:
            sys.stdout.write(json.dumps(run) + "\n")
            sys.stdout.flush()
        else:
            _console().print(_tail_line(run), highlight=False, soft_wrap=True)

    with _client(url, api_key) as client:
        fetch = lambda: client.get("/v1/runs", {**params, "limit": window})["items"]  # noqa: E731
        try:
            first = fetch()  # unreachable at start is an error, not a wait
            finished = [r for r in first if r["status"] != "running"]
            for run in finished:
                seen.add(run["run_id"])
            for run in reversed(finished[:history]):
                emit(run)
                printed += 1
            if not as_json:
                _console(stderr=True).print(f"[dim]following runs on {client.url} (Ctrl-C to stop)[/]")
            while (count is None or printed < count) and (deadline is None or time.monotonic() < deadline):
                time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
                for run in reversed(_retrying(fetch, interval)):
                    if run["status"] == "running" or run["run_id"] in seen:
                        continue
                    seen.add(run["run_id"])
                    emit(run)
                    printed += 1
                    if count is not None and printed >= count:
                        break
        except KeyboardInterrupt:
            if not as_json:
                _console(stderr=True).print("stopped")


def _tail_line(run: dict[str, Any]) -> str:
    status = run["status"]
    style = render.STATUS_STYLE.get(status, "")
    failure = f"  {run['failure_type']}/{run['failure_code']}" if run.get("failure_type") else ""
    return (
        f"{render.fmt_time(run.get('ended_at') or run.get('started_at'))}  {run['run_id']}  "
        f"{run.get('agent_id') or '?'} {run.get('agent_version') or '?'} ({run.get('environment') or '?'})  "
        f"[{style}]{status:<8}[/]  {render.fmt_ms(run.get('duration_ms')):>9}  "
        f"steps {run.get('step_count', 0)}  retries {run.get('retry_count', 0)}{failure}"
    )
