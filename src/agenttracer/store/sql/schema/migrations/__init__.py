"""The Alembic migrations shipped in the package (``env.py``, ``versions/``): they build the schema on SQLite and
PostgreSQL and never import application code (an import contract checks it)."""
