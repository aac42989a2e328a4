"""Self time is stored per finished run and (step type, name), so stats and rollups sum it in SQL.

``step_self_time`` holds, for each finished run, the summed self time of its steps per (step_type,
name), with what it was computed from: the run's step count and ends (a row counts only while they
still equal the run's). The rollup refreshers fill it as they roll each bucket up. Existing
runs get their rows the same way: every rollup row is dropped and the rollup state reset (as migration
0007 did), so the refresher's next passes rebuild the rollups from the oldest run on and attribute
every run on the way; stats stay exact meanwhile (a run without current rows has its self time
computed from its steps when read). Computing self time needs the application's definition, which a
migration does not import.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ROLLUP_TABLES = ("rollup_runs", "rollup_failures", "rollup_steps", "rollup_dirty")


def _reset_rollups() -> None:
    for table in _ROLLUP_TABLES:
        op.execute(sa.text(f"DELETE FROM {table}"))
    # Row 1 is the hourly refresher's watermark; any other row is a live refresher's (store/sql/rollup/marks.py).
    op.execute(sa.text("UPDATE rollup_state SET rolled_until = NULL WHERE id = 1"))
    op.execute(sa.text("DELETE FROM rollup_state WHERE id <> 1"))


def upgrade() -> None:
    op.create_table(
        "step_self_time",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("step_type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("self_ms", sa.Float(), nullable=False),
        sa.Column("run_steps", sa.Integer(), nullable=False),
        sa.Column("run_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "step_type", "name", name="pk_step_self_time"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_step_self_time_run_id_runs", ondelete="CASCADE"),
    )
    _reset_rollups()


def downgrade() -> None:
    op.drop_table("step_self_time")
    _reset_rollups()
