"""Runs know their source and whether the abandonment sweep closed them; running runs are indexed by
their last write.

* ``source``: ``sdk`` (``POST /v1/ingest``) or ``otlp`` (``POST /v1/traces``). A run belongs to the
  source that created it and each write path refuses the other's events for it. Existing runs that
  hold a step with a span id came from OTLP; every other existing run is taken as the SDK's.
* ``abandoned``: true while the run's ``failure`` verdict is the sweep's (no event for
  ``AGENTTRACER_RUN_TIMEOUT_S``), so a late event can tell it from a verdict the agent sent.
* a partial index on ``updated_at`` of running runs: the sweep's "running runs whose last event is
  older than the cut-off", read in order and a bounded number at a time. Only running runs are in it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_INDEX = "ix_runs_updated_at"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("source", sa.String(8), nullable=False, server_default="sdk"))
        batch.add_column(sa.Column("abandoned", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE runs SET source = 'otlp' WHERE run_id IN (SELECT run_id FROM steps WHERE span_id IS NOT NULL)"
    )
    op.create_index(
        _INDEX,
        "runs",
        ["updated_at"],
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("abandoned")
        batch.drop_column("source")
