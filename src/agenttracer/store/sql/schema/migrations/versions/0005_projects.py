"""Projects: every run in one project, keys bound to projects, indexes and rollups keyed by project first.

- ``projects`` (slug, retention_days, created_at) with the ``default`` project;
- ``runs.project`` (NOT NULL, default ``default``): every existing run is now in ``default``;
- the runs-list indexes start with the project, so one project's reads never walk another's runs; the
  plain (started_at, run_id) index stays for the work that walks time across projects (rollups, retention);
- ``api_keys.admin`` and ``api_key_projects``: every existing key is bound to ``default``, where all
  existing data now is, so its answers do not change (an existing read key does not become an admin);
- the rollup tables are rebuilt with ``project`` as the first key column. Rollups are a pure function
  of the raw tables, so the new ones start empty with nothing rolled up: stats are exact from the raw
  tables meanwhile and the refresher rebuilds them from the oldest run on.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PROJECT_LEN = 63
_DEFAULT = "default"

# (old index, its columns): each is replaced by the same columns after the project.
_LIST_INDEXES = (
    ("ix_runs_agent_id_started_at_run_id", ["agent_id", "started_at", "run_id"]),
    ("ix_runs_agent_id_agent_version_started_at_run_id", ["agent_id", "agent_version", "started_at", "run_id"]),
    ("ix_runs_status_started_at_run_id", ["status", "started_at", "run_id"]),
    ("ix_runs_failure_type_failure_code", ["failure_type", "failure_code"]),
)
_PROJECT_TIME_INDEX = ("ix_runs_project_started_at_run_id", ["project", "started_at", "run_id"])


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _project_index(columns: list[str]) -> str:
    return "ix_runs_project_" + "_".join(columns)


def _rollup_key(with_project: bool) -> list[sa.Column]:
    project = [sa.Column("project", sa.String(_PROJECT_LEN), nullable=False)] if with_project else []
    return [
        *project,
        sa.Column("grain", sa.String(4), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False, autoincrement=False),
        sa.Column("bucket_start", _ts(), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("agent_version", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
    ]


def _key_names(with_project: bool) -> list[str]:
    return [c.name for c in _rollup_key(with_project)]


def _create_rollups(with_project: bool) -> None:
    key = _key_names(with_project)
    op.create_table(
        "rollup_runs",
        *_rollup_key(with_project),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("success", sa.Integer(), nullable=False),
        sa.Column("failure", sa.Integer(), nullable=False),
        sa.Column("partial", sa.Integer(), nullable=False),
        sa.Column("steps", sa.BigInteger(), nullable=False),
        sa.Column("retry_steps", sa.BigInteger(), nullable=False),
        sa.Column("runs_with_retries", sa.Integer(), nullable=False),
        sa.Column("run_time_ms", sa.Float(), nullable=False),
        sa.Column("last_started_at", _ts(), nullable=False),
        sa.Column("duration_hist", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name="pk_rollup_runs"),
    )
    op.create_table(
        "rollup_failures",
        *_rollup_key(with_project),
        sa.Column("failure_type", sa.String(32), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*key, "failure_type", "failure_code", name="pk_rollup_failures"),
    )
    op.create_table(
        "rollup_steps",
        *_rollup_key(with_project),
        sa.Column("step_type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("finished_latency_ms", sa.Float(), nullable=False),
        sa.Column("retry_latency_ms", sa.Float(), nullable=False),
        sa.Column("latency_hist", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(*key, "step_type", "name", name="pk_rollup_steps"),
    )
    if with_project:
        # The refreshers replace a bucket of every project at once: they need the bucket without the project.
        for table in ("rollup_runs", "rollup_failures", "rollup_steps"):
            op.create_index(f"ix_{table}_grain_bucket_start", table, ["grain", "bucket_start"])


def _rebuild_rollups(with_project: bool) -> None:
    for table in ("rollup_steps", "rollup_failures", "rollup_runs"):
        if not with_project:
            op.drop_index(f"ix_{table}_grain_bucket_start", table_name=table)
        op.drop_table(table)
    _create_rollups(with_project)
    # Nothing is rolled up any more: readers use the raw tables until the refresher has rebuilt them.
    op.execute("DELETE FROM rollup_dirty")
    op.execute("UPDATE rollup_state SET rolled_until = NULL")


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("slug", sa.String(_PROJECT_LEN), nullable=False),
        sa.Column("retention_days", sa.Integer()),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("slug", name="pk_projects"),
    )
    op.bulk_insert(projects, [{"slug": _DEFAULT, "retention_days": None, "created_at": datetime.now(timezone.utc)}])

    # A constant default: PostgreSQL adds the column without rewriting the table, SQLite by ALTER TABLE.
    op.add_column("runs", sa.Column("project", sa.String(_PROJECT_LEN), nullable=False, server_default=_DEFAULT))
    name, columns = _PROJECT_TIME_INDEX
    op.create_index(name, "runs", columns)
    for old, columns in _LIST_INDEXES:
        # The new index first, so no moment passes without an index for the filter.
        op.create_index(_project_index(columns), "runs", ["project", *columns])
        op.drop_index(old, table_name="runs")

    op.add_column("api_keys", sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "api_key_projects",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("project", sa.String(_PROJECT_LEN), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.key_id"], name="fk_api_key_projects_key_id_api_keys", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key_id", "project", name="pk_api_key_projects"),
    )
    op.execute(f"INSERT INTO api_key_projects (key_id, project) SELECT key_id, '{_DEFAULT}' FROM api_keys")

    _rebuild_rollups(with_project=True)


def downgrade() -> None:
    _rebuild_rollups(with_project=False)
    op.drop_table("api_key_projects")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("admin")
    for old, columns in _LIST_INDEXES:
        op.create_index(old, "runs", columns)
        op.drop_index(_project_index(columns), table_name="runs")
    op.drop_index(_PROJECT_TIME_INDEX[0], table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("project")
    op.drop_table("projects")
