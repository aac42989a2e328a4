"""SQLite WAL checkpoints of the ingest writer: taken after the write lock is released, every few commits.

The Ingest API's engine raises ``wal_autocheckpoint`` so that SQLite does not checkpoint inside the
commit (under the writer's lock); the writer then asks for a PASSIVE checkpoint itself every
``CHECKPOINT_EVERY`` commits. PostgreSQL has nothing of the kind.
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

from agenttracer.store.sql.lock import write_lock
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.write import sqlite_checkpoint
from agenttracer.store.sql.write.writer import write_batch
from tests.store.test_writer import NOW, incoming
from tests.support.events import new_run_id, step


def record_statements(engine: sa.Engine) -> list[tuple[str, bool]]:
    """(SQL text, whether this thread held the writer's lock) for every statement the engine runs."""
    seen: list[tuple[str, bool]] = []
    lock = write_lock(engine)

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        held = isinstance(lock, type(threading.Lock())) and lock.locked()
        seen.append((statement, held))

    return seen


def test_the_writer_checkpoints_every_few_commits_outside_its_lock(db_url: str) -> None:
    engine = make_engine(db_url, wal_autocheckpoint=sqlite_checkpoint.AUTOCHECKPOINT_PAGES)
    try:
        seen = record_statements(engine)
        commits = 3 * sqlite_checkpoint.CHECKPOINT_EVERY
        for _ in range(commits):
            write_batch(engine, incoming([step(new_run_id(), 1)]), now=NOW)
        checkpoints = [held for sql, held in seen if "wal_checkpoint" in sql]
        if engine.dialect.name == "sqlite":
            assert len(checkpoints) == 3 and not any(checkpoints)
            with engine.connect() as conn:
                pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
            assert pages == sqlite_checkpoint.AUTOCHECKPOINT_PAGES
        else:
            assert checkpoints == []
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM steps").scalar() == commits
    finally:
        engine.dispose()
