"""Alembic environment. Migrations describe the tables themselves and never import application code,
so an old migration keeps meaning what it meant when it was written."""

from __future__ import annotations

from alembic import context

engine = context.config.attributes.get("engine")
if engine is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    from sqlalchemy import create_engine

    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "sqlite:///.agenttracer/agenttracer.db")

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
