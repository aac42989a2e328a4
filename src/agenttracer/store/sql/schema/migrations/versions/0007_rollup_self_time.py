"""Rollups keep the self time of steps, so that shares of run time add up (docs/analytics.md).

``rollup_steps.finished_latency_ms`` (summed latency of steps in finished runs, which counted a nested
step's time again in its parent) gives way to ``self_ms`` (summed self time of those steps). Rows
rolled up before cannot be converted — self time needs the steps' intervals — so every rollup row is
dropped and the rollup state reset: stats stay exact from the raw tables meanwhile, and the
refresher's next pass rebuilds the rollups from the oldest run on, as on a fresh database.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
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
    _reset_rollups()
    with op.batch_alter_table("rollup_steps") as batch:
        batch.drop_column("finished_latency_ms")
        batch.add_column(sa.Column("self_ms", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    _reset_rollups()
    with op.batch_alter_table("rollup_steps") as batch:
        batch.drop_column("self_ms")
        batch.add_column(sa.Column("finished_latency_ms", sa.Float(), nullable=False, server_default="0"))
