"""Kept for existing imports: ``serve(app)`` is ``tests.support.servers.serve_app`` (real uvicorn on loopback)."""

from __future__ import annotations

from tests.support.servers import serve_app as serve

__all__ = ["serve"]
