"""CLI commands for projects: ``projects create|list|delete|retention``.

A project is where runs live (docs/deployment.md, "Projects"). ``create`` makes one ahead of its keys
(``agenttracer keys create --project P``), optionally with its own retention; ``delete`` removes the
project with all its runs and key bindings, and needs ``--yes``.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from agenttracer.cli.admin import DatabaseUrl, err, open_migrated_store
from agenttracer.cli.app import app

projects_app = typer.Typer(help="Create, list and delete projects.", no_args_is_help=True)
app.add_typer(projects_app, name="projects")

RetentionDays = typer.Option(
    None, "--retention-days", min=1,
    help="Keep this project's runs this many days (default: AGENTTRACER_RETENTION_DAYS).",
)


@projects_app.command("create")
def projects_create(
    slug: str = typer.Argument(..., help="The project's slug: lowercase letters, digits and '-' (≤ 63)."),
    retention_days: int | None = RetentionDays,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Create a project."""
    store = open_migrated_store(database_url)
    try:
        info = store.create_project(slug, retention_days)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        store.close()
    kept = f"{info.retention_days} days" if info.retention_days else "the deployment's retention"
    err.print(f"created project {info.slug} (runs kept: {kept})")


@projects_app.command("list")
def projects_list(database_url: str | None = DatabaseUrl) -> None:
    """List projects with their retention and creation time."""
    store = open_migrated_store(database_url)
    try:
        with store.reader() as reader:
            found = reader.list_projects()
    finally:
        store.close()
    table = Table("project", "retention", "created", box=None)
    for p in found:
        table.add_row(p.slug, f"{p.retention_days} d" if p.retention_days else "default",
                      p.created_at.strftime("%Y-%m-%d %H:%M:%SZ"))
    Console(width=200).print(table)


@projects_app.command("retention")
def projects_retention(
    slug: str = typer.Argument(..., help="The project."),
    retention_days: int | None = RetentionDays,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Set a project's own retention (leave --retention-days out to fall back to the deployment's)."""
    store = open_migrated_store(database_url)
    try:
        found = store.set_retention(slug, retention_days)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        store.close()
    if not found:
        err.print(f"[red]no project {slug!r}[/red]")
        raise typer.Exit(1)
    err.print(f"project {slug}: runs kept {f'{retention_days} days' if retention_days else 'as the deployment says'}")


@projects_app.command("delete")
def projects_delete(
    slug: str = typer.Argument(..., help="The project to delete, with all its runs."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: every run of the project is deleted for good."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Delete a project and all its runs, steps and failures; its keys lose it (a key left with no
    project is revoked). Other projects are not touched."""
    if not yes:
        err.print(f"[red]this deletes every run of {slug}: repeat with --yes to confirm[/red]")
        raise typer.Exit(2)
    store = open_migrated_store(database_url)
    try:
        deleted = store.delete_project(slug)
    finally:
        store.close()
    if deleted is None:
        err.print(f"[red]no project {slug!r}[/red]")
        raise typer.Exit(1)
    err.print(f"deleted project {slug}: {deleted.runs} runs, {deleted.steps} steps, {deleted.failures} failures; "
              f"{deleted.revoked_keys} keys revoked")
