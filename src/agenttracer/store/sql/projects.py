"""Projects on the ``projects`` table: create, list, set retention (shared by the CLI and both APIs).

Writes without keys create the project they name on
first use (``store/sql/write/sql.py``); ``agenttracer projects create`` makes one ahead of its keys.

Deleting a project (its runs, key bindings and row) is a write: ``store/sql/write/retention.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from agenttracer.store.projects import ProjectInfo, check_retention, check_slug
from agenttracer.store.sql.schema.tables import projects


def create_project(engine: sa.Engine, slug: str, retention_days: int | None = None) -> ProjectInfo:
    """Make ``slug``; ValueError when it is malformed or exists already."""
    check_slug(slug)
    check_retention(retention_days)
    info = ProjectInfo(slug, retention_days, datetime.now(timezone.utc))
    with engine.begin() as conn:
        if conn.execute(sa.select(projects.c.slug).where(projects.c.slug == slug)).first() is not None:
            raise ValueError(f"project {slug} exists already")
        conn.execute(projects.insert().values(slug=slug, retention_days=retention_days, created_at=info.created_at))
    return info


def set_retention(engine: sa.Engine, slug: str, retention_days: int | None) -> bool:
    """Set (None: clear) a project's own retention; False when there is no such project."""
    check_retention(retention_days)
    with engine.begin() as conn:
        result = conn.execute(projects.update().where(projects.c.slug == slug).values(retention_days=retention_days))
        return bool(result.rowcount)


def list_projects(conn: sa.Connection, only: frozenset[str] | None = None) -> list[ProjectInfo]:
    """Every project (or those in ``only``), by slug."""
    query = sa.select(projects.c.slug, projects.c.retention_days, projects.c.created_at).order_by(projects.c.slug)
    if only is not None:
        query = query.where(projects.c.slug.in_(sorted(only)))
    return [ProjectInfo(*row) for row in conn.execute(query)]


def project_slugs(conn: sa.Connection) -> tuple[str, ...]:
    """Every project's slug, sorted: what a reader of every project reads."""
    return tuple(conn.execute(sa.select(projects.c.slug).order_by(projects.c.slug)).scalars())
