"""The run filters shared by every read endpoint (runs list, stats, compare) and the CLI.

``projects`` keeps every read inside the projects its caller may see (the Query API always sets it,
from the key and the ``project`` parameter); None reads every project (maintenance, tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from agenttracer.store.sql.schema.tables import runs, steps


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


def in_projects(projects: Sequence[str] | None) -> list[sa.ColumnElement[bool]]:
    """The condition on ``runs`` keeping a read inside ``projects`` (none for None)."""
    if projects is None:
        return []
    if len(projects) == 1:  # an equality, which every planner matches to the project-first indexes
        return [runs.c.project == projects[0]]
    return [runs.c.project.in_(list(projects))]


def run_conditions(f: RunFilters) -> list[sa.ColumnElement[bool]]:
    """WHERE conditions on the ``runs`` table for these filters."""
    conds = in_projects(f.projects)
    for name in ("agent_id", "agent_version", "environment", "status", "failure_type", "failure_code"):
        value = getattr(f, name)
        if value is not None:
            conds.append(runs.c[name] == value)
    if f.since is not None:
        conds.append(runs.c.started_at >= f.since)
    if f.until is not None:
        conds.append(runs.c.started_at < f.until)
    if f.step_name is not None:
        # An alias, so that the condition still correlates with runs when the outer query also reads
        # steps (the per-step breakdown of /v1/stats): the bare table would correlate with that one.
        named = steps.alias("step_name_filter")
        conds.append(
            sa.exists().where(named.c.run_id == runs.c.run_id, named.c.name == f.step_name)
        )
    return conds
