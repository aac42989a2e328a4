"""Projects, in every store: a slug (``model.PROJECT_PATTERN``) and an optional retention in days (None:
the deployment's ``AGENTTRACER_RETENTION_DAYS``); the record a store answers and the rules it checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agenttracer.model import PROJECT_RULE, is_valid_project

MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class ProjectInfo:
    slug: str
    retention_days: int | None
    created_at: datetime


def check_slug(slug: str) -> None:
    if not is_valid_project(slug):
        raise ValueError(f"project: {PROJECT_RULE}")


def check_retention(days: int | None) -> None:
    if days is not None and not 0 < days <= MAX_RETENTION_DAYS:
        raise ValueError(f"retention days must be between 1 and {MAX_RETENTION_DAYS}")
