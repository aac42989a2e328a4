"""Run-list indexes end in run_id, so a filtered list is read in its full (started_at, run_id) order.

The runs list orders by (started_at DESC, run_id DESC). The indexes for an agent, an agent version and
a status ended at started_at, so they could serve that order only with a sort of each run of equal
starts; SQLite's planner then preferred walking the whole (started_at, run_id) index and filtering
every run, which for a rare combination (an agent's development runs that ended partial) read all
runs: 23 ms at 100 k runs, and more as the table grows. With run_id at the end, the filtered index gives the list
its order directly and both databases read only the matching agent's or status's runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (old name, new name, new columns); the old index is the new one without its trailing run_id.
_INDEXES = (
    ("ix_runs_agent_id_started_at", "ix_runs_agent_id_started_at_run_id", ["agent_id", "started_at", "run_id"]),
    (
        "ix_runs_agent_id_agent_version_started_at",
        "ix_runs_agent_id_agent_version_started_at_run_id",
        ["agent_id", "agent_version", "started_at", "run_id"],
    ),
    ("ix_runs_status_started_at", "ix_runs_status_started_at_run_id", ["status", "started_at", "run_id"]),
)


def upgrade() -> None:
    for old, new, columns in _INDEXES:
        # The new index first, so no moment passes without an index for the filter.
        op.create_index(new, "runs", columns)
        op.drop_index(old, table_name="runs")


def downgrade() -> None:
    for old, new, columns in _INDEXES:
        op.create_index(old, "runs", columns[:-1])
        op.drop_index(new, table_name="runs")
