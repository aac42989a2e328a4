"""The ``agenttracer`` command line.

Commands live in small modules by concern and register themselves on the shared Typer app:
``serve`` (up, serve, migrate), ``query`` (runs, show, stats, compare, tail), ``admin`` (keys, prune, sweep,
rollup), ``projects`` (projects) and ``copy`` (copy).
"""

from __future__ import annotations

from agenttracer.cli import admin, copy, projects, query, serve  # noqa: F401  (importing registers the commands)
from agenttracer.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
