"""``agenttracer copy --from URL --to URL``: move stored runs, projects and keys from one store to another.

Any pair of stores works (SQLite, PostgreSQL, ClickHouse). The destination is migrated first; runs are
copied as stored (no verdict is recomputed), a page at a time with a progress bar, resumably (see
``cli/copy_runs.py``); at the end the counts per project and a sample of runs are compared, and the
exit code is 1 when anything differs. Copy from a store nothing writes to meanwhile (stop the ingest
processes first), or the counts will differ by what arrived during the copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from agenttracer.cli.app import app
from agenttracer.cli.copy_runs import DEFAULT_SAMPLE, copy_runs, state_path, verify
from agenttracer.store import display_url, open_store
from agenttracer.store.transfer import DEFAULT_PAGE_RUNS, Transfer

err = Console(stderr=True)
_SHOWN_MISMATCHES = 20


@contextmanager
def open_transfer(url: str) -> Iterator[Transfer]:
    """The store at ``url``, migrated to the newest schema, as a ``Transfer``."""
    store = open_store(url)
    try:
        store.migrate()
        yield store.transfer()
    finally:
        store.close()


@app.command("copy")
def copy_command(
    source_url: str = typer.Option(..., "--from", help="The store to read (sqlite:///…, postgresql://…, …)."),
    destination_url: str = typer.Option(..., "--to", help="The store to write; migrated first."),
    page_runs: int = typer.Option(DEFAULT_PAGE_RUNS, "--page", min=1, max=10_000, help="Runs per page."),
    sample: int = typer.Option(DEFAULT_SAMPLE, "--sample", min=0, help="Runs compared field by field at the end."),
    state: Path | None = typer.Option(
        None, "--state", help="Checkpoint file (default: .agenttracer/copy-<hash of the two URLs>.json)."
    ),
) -> None:
    """Copy runs, projects and keys from one store to another, resumably, then verify the copy."""
    if source_url == destination_url:
        err.print("[red]agenttracer: --from and --to are the same store[/red]")
        raise typer.Exit(2)
    state_file = state or state_path(source_url, destination_url)
    with open_transfer(source_url) as source, open_transfer(destination_url) as destination:
        destination.import_access(source.export_access())
        total = sum(c.runs for c in source.counts().values())
        err.print(f"copying {total:,} runs: {display_url(source_url)} -> {display_url(destination_url)}")
        columns = (TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=False) as progress:
            task = progress.add_task("copy", total=total)
            report = copy_runs(
                source, destination, state_file, page_runs=page_runs, sample_size=sample,
                on_page=lambda n: progress.advance(task, n),
            )
            progress.update(task, completed=report.walked)
        err.print(
            f"stored {report.copied_runs:,} runs and {report.copied_steps:,} steps; "
            f"{report.skipped:,} runs were there already"
        )
        mismatches = verify(source, destination, report.sample)
    if mismatches:
        err.print(f"[red]the stores differ in {len(mismatches)} places:[/red]")
        for m in mismatches[:_SHOWN_MISMATCHES]:
            err.print(f"  {m.where}: {m.what}")
        raise typer.Exit(1)
    err.print(f"verified: equal counts in every project, {len(report.sample)} sampled runs equal field by field")
