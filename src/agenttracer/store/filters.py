"""The run filters shared by every read (runs list, stats, compare) of every store, and the CLI.

``projects`` keeps every read inside the projects its caller may see (the Query API always sets it,
from the key and the ``project`` parameter); None reads every project (maintenance, tests). A store
turns these into its own conditions (``store/sql/read/filters.py`` for SQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RunFilters:
    agent_id: str | None = None
    agent_version: str | None = None
    environment: str | None = None
    status: str | None = None
    failure_type: str | None = None
    failure_code: str | None = None
    step_name: str | None = None
    since: datetime | None = None  # inclusive, on runs.started_at
    until: datetime | None = None  # exclusive, on runs.started_at
    projects: tuple[str, ...] | None = None  # sorted; None: every project
