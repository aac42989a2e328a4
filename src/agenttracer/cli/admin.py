"""CLI commands: admin (to be filled in)."""

from __future__ import annotations

from agenttracer.cli.app import app  # noqa: F401
