"""The ClickHouse store: a ClickHouse server (``clickhouse://``, via clickhouse-connect) or the same engine
embedded in the process (``chdb:///dir``, via chdb), behind the same store interface as ``store/sql``.

* ``connection.py`` — the one adapter over both drivers (same SQL, same Python values back): the
  chdb session pool (``chdb_pool.py``), clickhouse-connect (``server.py``), the statement text and
  parameters (``sqltext.py``), one decoder of answers (``decode.py``), error classes (``errors.py``);
* ``schema/`` — the versioned migrations (``schema/migrations/v*.py``) and their runner;
* ``write/`` — SDK batches, OTLP spans, the abandonment sweep and retention, without transactions;
* ``read/`` — what the Query API reads;
* ``keys.py`` and ``projects.py`` — API keys and projects.

Only this package imports chdb or clickhouse_connect (import contracts in pyproject.toml).
"""

from __future__ import annotations

from agenttracer.store.interface import OpenOptions, Store


def open_store(url: str, options: OpenOptions) -> Store:
    """Open a chdb:// or clickhouse:// URL (``agenttracer.store.open_store`` calls this)."""
    from agenttracer.store.clickhouse.store import open_store as open_clickhouse

    return open_clickhouse(url, options)
