"""Projects on ClickHouse's ``projects`` table: create, list, set retention, and the writers' "exists
from its first write on". Same semantics as ``store/sql/projects.py``.

The table is a ReplacingMergeTree keyed by slug: a change is a new version of the row, a deletion a
tombstone (``is_deleted``); every read here is ``FINAL`` (a handful of rows).
"""

from __future__ import annotations

from datetime import datetime, timezone

from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.projects import ProjectInfo, check_retention, check_slug

_COLUMNS = ("slug", "retention_days", "created_at", "version", "is_deleted")


def _version() -> int:
    from agenttracer.store.clickhouse.write.rows import next_version

    return next_version()


def _stored(conn: Connection, slug: str) -> ProjectInfo | None:
    rows = conn.query(
        "SELECT slug, retention_days, created_at FROM projects FINAL WHERE slug = {slug:String}", {"slug": slug}
    ).rows
    return ProjectInfo(*rows[0]) if rows else None


def ensure_project(conn: Connection, slug: str, now: datetime, *, has_runs: bool = False) -> None:
    """Make ``slug`` exist (the writers' first write into a project creates it).

    ``has_runs``: the writer has just read a stored run of ``slug``. Every run is written after its
    project was made to exist, and a project's deletion removes its runs before its row, so the row is
    there and the statement that would read it is spared (one of a batch's few, each costing the engine
    ~1-3 ms whatever it reads). A deletion running at this very moment is the race a read would have
    too, between the read and the write."""
    if has_runs:
        return
    if _stored(conn, slug) is None:
        conn.insert("projects", _COLUMNS, [(slug, None, now, _version(), 0)])


def create_project(conn: Connection, slug: str, retention_days: int | None = None) -> ProjectInfo:
    """Make ``slug``; ValueError when it is malformed or exists already."""
    check_slug(slug)
    check_retention(retention_days)
    if _stored(conn, slug) is not None:
        raise ValueError(f"project {slug} exists already")
    info = ProjectInfo(slug, retention_days, datetime.now(timezone.utc))
    conn.insert("projects", _COLUMNS, [(slug, retention_days, info.created_at, _version(), 0)])
    return info


def set_retention(conn: Connection, slug: str, retention_days: int | None) -> bool:
    """Set (None: clear) a project's own retention; False when there is no such project."""
    check_retention(retention_days)
    stored = _stored(conn, slug)
    if stored is None:
        return False
    conn.insert("projects", _COLUMNS, [(slug, retention_days, stored.created_at, _version(), 0)])
    return True


def forget_project(conn: Connection, slug: str) -> None:
    """The project's row is gone (a tombstone); its runs and keys are the caller's."""
    stored = _stored(conn, slug)
    if stored is not None:
        conn.insert("projects", _COLUMNS, [(slug, None, stored.created_at, _version(), 1)])


def list_projects(conn: Connection, only: frozenset[str] | None = None) -> list[ProjectInfo]:
    """Every project (or those in ``only``), by slug."""
    sql = "SELECT slug, retention_days, created_at FROM projects FINAL"
    params = {}
    if only is not None:
        sql += " WHERE slug IN {only:Array(String)}"
        params["only"] = sorted(only)
    return [ProjectInfo(*row) for row in conn.query(sql + " ORDER BY slug", params).rows]


def project_slugs(conn: Connection) -> tuple[str, ...]:
    """Every project's slug, sorted: what a reader of every project reads."""
    return tuple(row[0] for row in conn.query("SELECT slug FROM projects FINAL ORDER BY slug").rows)
