"""API keys and access control for both APIs.

NOTE: placeholder that fixes the interface; the production-readiness work fills in keys, scopes and
rate limiting behind the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from agenttracer.server.settings import Settings


def auth_dependency(settings: Settings, engine: sa.Engine, scope: str) -> Callable[..., Any]:
    """A FastAPI dependency that admits a request to an API of ``scope`` ('ingest' or 'read')."""

    async def _allow() -> None:
        return None

    return _allow


def auth_required(settings: Settings, engine: sa.Engine) -> bool:
    """True when the APIs demand keys: ``AGENTTRACER_REQUIRE_AUTH=1`` or (once implemented) any key exists."""
    return settings.require_auth
