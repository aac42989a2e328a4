"""Rollups: hourly and daily aggregates for /v1/stats and /v1/agents, and the bookkeeping that keeps them exact.

Creates rollup_runs, rollup_failures and rollup_steps (aggregates per hour or day and identity level),
rollup_dirty (hours whose raw data changed after they were rolled up) and rollup_state (the single
row saying up to which hour everything has been rolled up). An existing database starts with nothing
rolled up (rolled_until NULL): stats stay exact from the raw tables, and the first refresher pass
(``agenttracer rollup refresh``, or the ingest server's background refresher) builds the rollups from
the oldest run on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _key() -> list[sa.Column]:
    return [
        sa.Column("grain", sa.String(4), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False, autoincrement=False),
        sa.Column("bucket_start", _ts(), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("agent_version", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
    ]


_KEY_NAMES = ["grain", "level", "bucket_start", "agent_id", "agent_version", "environment"]


def upgrade() -> None:
    op.create_table(
        "rollup_runs",
        *_key(),
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
        sa.PrimaryKeyConstraint(*_KEY_NAMES, name="pk_rollup_runs"),
    )
    op.create_table(
        "rollup_failures",
        *_key(),
        sa.Column("failure_type", sa.String(32), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY_NAMES, "failure_type", "failure_code", name="pk_rollup_failures"),
    )
    op.create_table(
        "rollup_steps",
        *_key(),
        sa.Column("step_type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("finished_latency_ms", sa.Float(), nullable=False),
        sa.Column("retry_latency_ms", sa.Float(), nullable=False),
        sa.Column("latency_hist", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY_NAMES, "step_type", "name", name="pk_rollup_steps"),
    )
    op.create_table(
        "rollup_dirty",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True),
        sa.Column("hour", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollup_dirty"),
    )
    op.create_index("ix_rollup_dirty_hour", "rollup_dirty", ["hour"])
    state = op.create_table(
        "rollup_state",
        sa.Column("id", sa.SmallInteger(), nullable=False, autoincrement=False),
        sa.Column("rolled_until", _ts()),
        sa.PrimaryKeyConstraint("id", name="pk_rollup_state"),
    )
    op.bulk_insert(state, [{"id": 1, "rolled_until": None}])


def downgrade() -> None:
    op.drop_table("rollup_state")
    op.drop_index("ix_rollup_dirty_hour", table_name="rollup_dirty")
    op.drop_table("rollup_dirty")
    op.drop_table("rollup_steps")
    op.drop_table("rollup_failures")
    op.drop_table("rollup_runs")
