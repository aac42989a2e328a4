"""CLI commands for operators: ``keys create|list|revoke``, ``prune``, ``sweep`` and ``rollup refresh``.

Each takes ``--database-url`` (default: ``AGENTTRACER_DATABASE_URL``, then the local SQLite file).
``keys create`` writes the new key alone on stdout — it is shown this once and never stored — and
everything else on stderr, so ``KEY=$(agenttracer keys create --scope ingest)`` just works.
"""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from agenttracer.cli.app import app
from agenttracer.model import DEFAULT_PROJECT
from agenttracer.server.settings import Settings
from agenttracer.store import open_store
from agenttracer.store.interface import Store
from agenttracer.store.keys import SCOPES

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

err = Console(stderr=True)

DatabaseUrl = typer.Option(
    None,
    "--database-url",
    envvar="AGENTTRACER_DATABASE_URL",
    help="Database to use (sqlite:///path or postgresql://…). Default: the local SQLite file.",
    show_default=False,
)


_DURATION = re.compile(r"^\s*(\d+)\s*([dhm]?)\s*$")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "": 86_400}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m`` or a bare number of days → a positive timedelta."""
    match = _DURATION.match(text.lower())
    if not match or int(match.group(1)) <= 0:
        raise ValueError("expected a positive age such as 30d, 12h or 90m (a bare number means days)")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _cannot_open(exc: BaseException) -> NoReturn:
    first = (str(exc).splitlines() or [""])[0]
    err.print(f"[red]cannot open the database:[/red] {type(exc).__name__}: {first}")
    raise typer.Exit(2) from None


def open_migrated_store(database_url: str | None) -> Store:
    """The store the command works on (close it when done); exit 2 when it cannot be opened or was never
    migrated."""
    url = Settings.from_env(database_url=database_url).database_url
    try:
        store = open_store(url)
    except Exception as exc:  # a malformed URL, or a backend that cannot be set up: said in one line
        _cannot_open(exc)
    try:
        migrated = store.current_revision() is not None
    except store.database_errors as exc:
        store.close()
        _cannot_open(exc)
    if not migrated:
        store.close()
        err.print("[red]the database has no AgentTracer tables yet:[/red] run `agenttracer migrate` first")
        raise typer.Exit(2)
    return store


@keys_app.command("create")
def keys_create(
    scope: str = typer.Option(..., "--scope", help="What the key opens: 'ingest' (Ingest API) or 'read' (Query API)."),
    name: str | None = typer.Option(None, "--name", help="A label to recognise the key by (≤ 64 characters)."),
    project: list[str] = typer.Option(
        [], "--project", help="The project the key is bound to (repeat for a read key of several). "
        f"Default: {DEFAULT_PROJECT}. An ingest key has exactly one.", show_default=False,
    ),
    admin: bool = typer.Option(False, "--admin", help="A read key of every project (read scope only)."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Create a key bound to its project(s) and print it once. Store it now: only its hash is kept."""
    if scope not in SCOPES:
        err.print(f"[red]--scope must be one of: {', '.join(SCOPES)}[/red]")
        raise typer.Exit(2)
    store = open_migrated_store(database_url)
    try:
        info, key = store.create_key(scope, name, projects=project or [DEFAULT_PROJECT], admin=admin)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        store.close()
    bound = "every project (admin)" if info.admin else "project " + ", ".join(info.projects)
    err.print(f"created {info.key_id} (scope {info.scope}, {bound}{', name ' + info.name if info.name else ''}).")
    err.print("This is the only time the key is shown: keep it in your secret store.")
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def keys_list(database_url: str | None = DatabaseUrl) -> None:
    """List keys: id, scope, name, the key's prefix and last four characters, created, revoked."""
    store = open_migrated_store(database_url)
    try:
        keys = store.list_keys()
    finally:
        store.close()
    if not keys:
        err.print(
            "no API keys yet: the APIs accept requests without a key unless AGENTTRACER_REQUIRE_AUTH=1 "
            "(see docs/deployment.md)."
        )
        return
    table = Table("id", "scope", "projects", "name", "key", "created", "revoked", box=None)
    for k in keys:
        table.add_row(
            k.key_id,
            k.scope,
            "(admin: all)" if k.admin else ",".join(k.projects),
            k.name or "",
            k.masked,
            k.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
            k.revoked_at.strftime("%Y-%m-%d %H:%M:%SZ") if k.revoked_at else "",
        )
    Console(width=200).print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="The key's id, as `agenttracer keys list` shows it."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Revoke a key. Both APIs refuse it from the next request on."""
    store = open_migrated_store(database_url)
    try:
        found = store.revoke_key(key_id)
    finally:
        store.close()
    if not found:
        err.print(f"[red]no key with id {key_id!r}[/red]")
        raise typer.Exit(1)
    err.print(f"revoked {key_id}")


@app.command("prune")
def prune_command(
    older_than: str | None = typer.Option(
        None,
        "--older-than",
        help="Delete runs that started longer ago than this: 30d, 12h, 90m. "
        "Default: AGENTTRACER_RETENTION_DAYS days.",
        show_default=False,
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be deleted; delete nothing."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="Runs deleted per transaction."),
    project: str | None = typer.Option(
        None, "--project", help="Only this project's runs. Default: every project's.", show_default=False
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Delete whole runs — with their steps and failure — older than a cut-off, in small batches."""
    if older_than is None:
        days = Settings.from_env().retention_days
        if not days:
            err.print("[red]say how old: --older-than 30d (or set AGENTTRACER_RETENTION_DAYS)[/red]")
            raise typer.Exit(2)
        older_than = f"{days}d"
    try:
        age = parse_age(older_than)
    except ValueError as exc:
        err.print(f"[red]--older-than: {exc}[/red]")
        raise typer.Exit(2) from None
    store = open_migrated_store(database_url)
    try:
        if project is not None and not _project_exists(store, project):
            err.print(f"[red]--project: no project {project!r} (agenttracer projects list)[/red]")
            raise typer.Exit(2)
        result = store.prune(age, batch_size=batch_size, dry_run=dry_run, project=project)
    finally:
        store.close()
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {result.runs} runs, {result.steps} steps, {result.failures} failures "
        + (f"of project {project} " if project is not None else "")
        + f"that started before {result.cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        + ("" if dry_run else f" ({result.batches} batches)")
    )


def _project_exists(store: Store, slug: str) -> bool:
    with store.reader() as reader:
        return slug in reader.project_slugs()


@app.command("sweep")
def sweep_command(
    timeout_s: int | None = typer.Option(
        None,
        "--timeout-s",
        min=1,
        help="Close running runs with no new event for this many seconds. Default: AGENTTRACER_RUN_TIMEOUT_S.",
        show_default=False,
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Close abandoned runs now as failure / orchestration / abandoned (the ingest process does it on its own)."""
    seconds = timeout_s or Settings.from_env().run_timeout_s
    if not seconds:
        err.print("[red]say after how long: --timeout-s 3600 (AGENTTRACER_RUN_TIMEOUT_S is 0)[/red]")
        raise typer.Exit(2)
    store = open_migrated_store(database_url)
    try:
        # Every abandoned run, still in short transactions of a bounded number of runs each.
        result = store.sweep(timedelta(seconds=seconds), max_batches=sys.maxsize)
    finally:
        store.close()
    since = result.cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")
    typer.echo(f"closed {len(result.closed)} abandoned runs with no event since {since} ({result.batches} batches)")


rollup_app = typer.Typer(help="Maintain the rollups that /v1/stats and /v1/agents read.", no_args_is_help=True)
app.add_typer(rollup_app, name="rollup")


@rollup_app.command("refresh")
def rollup_refresh_command(
    rebuild: bool = typer.Option(
        False, "--all", help="Forget every rollup and rebuild them all from the raw tables, oldest run first."
    ),
    settle_seconds: int = typer.Option(
        None, "--settle-seconds", min=0, show_default=False,
        help="Roll up an hour only this long after it ended. Default: AGENTTRACER_ROLLUP_SETTLE_SECONDS.",
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Fold dirty hours back into the rollups and roll up every hour that has closed.

    The ingest server does this in the background every AGENTTRACER_ROLLUP_INTERVAL_SECONDS; run it
    by hand after a bulk load that bypassed the Ingest API, or with --all to rebuild from scratch.
    """
    settle = settle_seconds if settle_seconds is not None else Settings.from_env().rollup_settle_seconds
    store = open_migrated_store(database_url)
    try:
        result = store.refresh_rollups(settle=timedelta(seconds=settle), rebuild=rebuild)
    finally:
        store.close()
    if result.skipped:
        err.print("[yellow]another refresher is working on this database; nothing done[/yellow]")
        raise typer.Exit(1)
    until = result.rolled_until.strftime("%Y-%m-%dT%H:%M:%SZ") if result.rolled_until else "-"
    typer.echo(
        f"recomputed {result.hours} hours and {result.days} days in {result.seconds:.1f} s; "
        f"rolled up until {until}; {result.dirty_left} hours still dirty"
    )
