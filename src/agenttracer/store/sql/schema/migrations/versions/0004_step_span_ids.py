"""Steps keep the OTLP span id they came from, unique per run (POST /v1/traces).

A step made from an OpenTelemetry span is identified by its span id: the same span sent twice is
stored once, whatever seq the run's other spans give it (seq follows start order and is recomputed
as a trace's spans arrive). ``parent_span_id`` keeps the tree while a parent has not arrived yet.
Both are NULL for steps sent by the SDK; the unique index is partial, so it costs those nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_INDEX = "ix_steps_run_id_span_id"


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("span_id", sa.String(16)))
        batch.add_column(sa.Column("parent_span_id", sa.String(16)))
    op.create_index(
        _INDEX,
        "steps",
        ["run_id", "span_id"],
        unique=True,
        postgresql_where=sa.text("span_id IS NOT NULL"),
        sqlite_where=sa.text("span_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="steps")
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("parent_span_id")
        batch.drop_column("span_id")
