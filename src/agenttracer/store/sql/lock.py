"""The write lock: on SQLite, every write of this process (writer, rollup refresher) goes through one lock.

SQLite has a single writer anyway; the lock keeps our own requests from contending for it. On
PostgreSQL there is no process-side lock (row locks and the refresher's advisory lock do the work).
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from agenttracer.store.sql.dialect import needs_process_write_lock

_SQLITE_LOCKS: dict[str, threading.Lock] = {}
_SQLITE_LOCKS_GUARD = threading.Lock()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def write_lock(engine: sa.Engine) -> threading.Lock | _NoLock:
    if not needs_process_write_lock(engine):
        return _NoLock()
    key = engine.url.render_as_string(hide_password=False)
    with _SQLITE_LOCKS_GUARD:
        return _SQLITE_LOCKS.setdefault(key, threading.Lock())
