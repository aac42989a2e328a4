"""The SQL conditions on ``runs`` for the store-neutral :class:`~agenttracer.store.filters.RunFilters`."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from agenttracer.store.filters import RunFilters
from agenttracer.store.sql.schema.tables import runs, steps


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
