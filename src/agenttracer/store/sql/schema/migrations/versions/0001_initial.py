"""Initial schema: runs, steps, failures and api_keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("agent_id", sa.String(128)),
        sa.Column("agent_version", sa.String(64)),
        sa.Column("environment", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("started_at", _ts()),
        sa.Column("ended_at", _ts()),
        sa.Column("duration_ms", sa.Float()),
        sa.Column("step_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error_step_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("retry_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failure_type", sa.String(32)),
        sa.Column("failure_code", sa.String(64)),
        sa.Column("meta", _json(), nullable=False, server_default="{}"),
        sa.Column("meta_removed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("ingested_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_started_at_run_id", "runs", ["started_at", "run_id"])
    op.create_index("ix_runs_agent_id_started_at", "runs", ["agent_id", "started_at"])
    op.create_index("ix_runs_agent_id_agent_version_started_at", "runs", ["agent_id", "agent_version", "started_at"])
    op.create_index("ix_runs_status_started_at", "runs", ["status", "started_at"])
    op.create_index("ix_runs_failure_type_failure_code", "runs", ["failure_type", "failure_code"])

    op.create_table(
        "steps",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("step_type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("ended_at", _ts(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("retry_of_seq", sa.Integer()),
        sa.Column("parent_seq", sa.Integer()),
        sa.Column("error_class", sa.String(128)),
        sa.Column("failure_code", sa.String(64)),
        sa.Column("meta", _json(), nullable=False, server_default="{}"),
        sa.Column("meta_removed", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_steps"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_steps_run_id_runs", ondelete="CASCADE"),
    )
    op.create_index("ix_steps_name_run_id", "steps", ["name", "run_id"])
    op.create_index("ix_steps_step_type_started_at", "steps", ["step_type", "started_at"])

    op.create_table(
        "failures",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("failure_type", sa.String(32), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False),
        sa.Column("step_seq", sa.Integer()),
        sa.Column("message", sa.String(256)),
        sa.Column("recorded_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_failures"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_failures_run_id_runs", ondelete="CASCADE"),
    )

    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("last4", sa.String(4), nullable=False),
        sa.Column("name", sa.String(64)),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("revoked_at", _ts()),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("failures")
    op.drop_table("steps")
    op.drop_table("runs")
