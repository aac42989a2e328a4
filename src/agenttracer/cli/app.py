"""The Typer application object that every command module registers itself on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="agenttracer",
    help="AgentTracer: privacy-safe observability for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
