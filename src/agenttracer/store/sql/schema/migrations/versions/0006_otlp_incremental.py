"""OTLP steps are numbered once and never renumbered; what the assembler looks up is indexed.

A span's seq is now given in arrival order and kept for good (docs/otlp.md, "Step numbers and
order"), so a late span costs its own request, never a rewrite of the stored trace. What this needs:

* ``runs.root_span_id`` / ``runs.root_error``: the trace's root span (the run itself, not a step)
  and its failure code when it ended in error — what the verdict needs each time a late span
  re-judges a settled run. NULL for SDK runs.
* partial indexes over OTLP steps only (``span_id IS NOT NULL``), so the SDK's steps pay nothing:
  the run detail's start-time order; each action's attempts by end time (the retry rule); the
  steps still waiting for their parent; the steps the verdict reads (errors, retries).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OTLP = "span_id IS NOT NULL"
# name -> (columns, partial-index condition)
_INDEXES = {
    "ix_steps_run_id_started_at_seq": (["run_id", "started_at", "seq"], _OTLP),
    "ix_steps_run_id_name_ended_at": (["run_id", "name", "ended_at"], _OTLP),
    "ix_steps_run_id_parent_span_id": (
        ["run_id", "parent_span_id"],
        "parent_seq IS NULL AND parent_span_id IS NOT NULL",
    ),
    "ix_steps_run_id_seq": (
        ["run_id", "seq"],
        f"{_OTLP} AND (status = 'error' OR retry_of_seq IS NOT NULL OR attempt > 1)",
    ),
}


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("root_span_id", sa.String(16)))
        batch.add_column(sa.Column("root_error", sa.String(64)))
    for name, (columns, where) in _INDEXES.items():
        op.create_index(name, "steps", columns, postgresql_where=sa.text(where), sqlite_where=sa.text(where))


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="steps")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("root_error")
        batch.drop_column("root_span_id")
