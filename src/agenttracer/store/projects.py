"""Projects: create, list and delete them, on the ``projects`` table (shared by the CLI and both APIs).

A project is a slug (``model.PROJECT_PATTERN``) and an optional retention in days (None: the
deployment's ``AGENTTRACER_RETENTION_DAYS``). Writes without keys create the project they name on
first use (``store/write/sql.py``); ``agenttracer projects create`` makes one ahead of its keys.

Deleting a project deletes its runs (with their steps and failures) a batch at a time, its key
bindings, and revokes every key left bound to no project (an ingest key of that project, a read key
of that project only); no other project's rows are touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from agenttracer.model import PROJECT_RULE, is_valid_project
from agenttracer.store.rollup.marks import mark_dirty
from agenttracer.store.schema.tables import api_key_projects, api_keys, failures, projects, runs, steps

DELETE_BATCH = 500
MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class ProjectInfo:
    slug: str
    retention_days: int | None
    created_at: datetime


@dataclass(frozen=True)
class Deleted:
    runs: int
    steps: int
    failures: int
    revoked_keys: int


def check_slug(slug: str) -> None:
    if not is_valid_project(slug):
        raise ValueError(f"project: {PROJECT_RULE}")


def check_retention(days: int | None) -> None:
    if days is not None and not 0 < days <= MAX_RETENTION_DAYS:
        raise ValueError(f"retention days must be between 1 and {MAX_RETENTION_DAYS}")


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


def delete_project(engine: sa.Engine, slug: str, *, batch_size: int = DELETE_BATCH) -> Deleted | None:
    """Delete ``slug`` and everything in it; None when there is no such project.

    Runs go a batch at a time in short transactions (as retention does), so writers of other projects
    wait at most one batch; the project row goes last, so an interrupted delete can be run again.
    """
    with engine.connect() as conn:
        if conn.execute(sa.select(projects.c.slug).where(projects.c.slug == slug)).first() is None:
            return None
    n_runs = n_steps = n_failures = 0
    while True:
        with engine.begin() as conn:
            found = conn.execute(
                sa.select(runs.c.run_id, runs.c.started_at).where(runs.c.project == slug).limit(batch_size)
            ).all()
            if not found:
                break
            ids = [run_id for run_id, _ in found]
            mark_dirty(conn, {started for _, started in found if started is not None})
            n_failures += conn.execute(failures.delete().where(failures.c.run_id.in_(ids))).rowcount or 0
            n_steps += conn.execute(steps.delete().where(steps.c.run_id.in_(ids))).rowcount or 0
            n_runs += conn.execute(runs.delete().where(runs.c.run_id.in_(ids))).rowcount or 0
    with engine.begin() as conn:
        bound = sa.select(api_key_projects.c.key_id).where(api_key_projects.c.project == slug)
        affected = list(conn.execute(bound).scalars())
        conn.execute(api_key_projects.delete().where(api_key_projects.c.project == slug))
        still_bound = sa.select(api_key_projects.c.key_id).where(api_key_projects.c.key_id == api_keys.c.key_id)
        revoked = conn.execute(
            api_keys.update()
            .where(api_keys.c.key_id.in_(affected), api_keys.c.revoked_at.is_(None), ~sa.exists(still_bound))
            .values(revoked_at=datetime.now(timezone.utc))
        ).rowcount or 0
        conn.execute(projects.delete().where(projects.c.slug == slug))
    return Deleted(n_runs, n_steps, n_failures, revoked)
