"""The SQL store: SQLite and PostgreSQL through SQLAlchemy, grouped by concern:

* ``schema/`` — tables, engines, the shipped Alembic migrations;
* ``write/`` — the writer and everything only the Ingest API and maintenance use (the SQL, the SQLite
  write lock and checkpoints, retention, the abandonment sweep);
* ``rollup/`` — the hourly/daily aggregates: their one definition, dirty marks, window planning and the
  refresher (run by the ingest process, never by the Query API);
* ``read/`` — what the Query API reads: runs, stats, steps, compare and their SQL helpers;
* ``keys.py`` (API keys), ``projects.py`` and ``periodic.py`` (background workers) are shared;
* ``store.py`` — ``SqlStore``, the store interface (``store/interface.py``) over all of the above.
"""

from __future__ import annotations

from agenttracer.store.interface import OpenOptions, Store


def open_store(url: str, options: OpenOptions) -> Store:
    """Open a sqlite:// or postgresql:// URL (``agenttracer.store.open_store`` calls this)."""
    from agenttracer.store.sql.store import open_store as open_sql

    return open_sql(url, options)
