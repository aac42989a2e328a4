"""Alembic environment. Migrations describe the tables themselves and never import application code,
so an old migration keeps meaning what it meant when it was written."""

from __future__ import annotations

from alembic import context

engine = context.config.attributes.get("engine")
if engine is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    from sqlalchemy import create_engine

    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "sqlite:///.agenttracer/agenttracer.db")

with engine.connect() as connection:
    if connection.dialect.name == "sqlite":
        # SQLite alters a table by copying it and dropping the original (Alembic's batch mode); with
        # foreign keys enforced, dropping ``runs`` would cascade into steps and failures and delete them.
        # The pragma only takes effect outside a transaction, so it is set before the migrations begin.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")  # as every connection of the engine has it
        connection.commit()
