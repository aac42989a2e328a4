"""WAL checkpoints for the ingest writer on SQLite, taken after the single-writer lock is released.

SQLite copies its write-ahead log back into the database file (a checkpoint) inside the commit that
takes the log past ``wal_autocheckpoint`` pages, and with ``synchronous=NORMAL`` that includes two
fsyncs. In the ingest server that commit runs under the process's write lock, so every batch queued
behind it waited for the copy and the disk: measured in one process, checkpoints were about half of
the commit time. So the Ingest API's engine raises ``wal_autocheckpoint`` to ``AUTOCHECKPOINT_PAGES``
(SQLite's own checkpoint becomes a backstop that also lets the log restart from its beginning), and
the writer asks for a PASSIVE checkpoint every ``CHECKPOINT_EVERY`` commits once it has let go of
the lock. A PASSIVE checkpoint never blocks writers or readers; another batch commits meanwhile.
"""

from __future__ import annotations

import logging
import threading
import weakref

import sqlalchemy as sa

from agenttracer.store.sql.dialect import is_sqlite

log = logging.getLogger("agenttracer.ingest")

# ~16 MB of 4 KiB pages: SQLite's own checkpoint only when ours fall behind (or the log must restart).
AUTOCHECKPOINT_PAGES = 4000
# A batch of a few hundred steps writes a few hundred pages to the log.
CHECKPOINT_EVERY = 4


class _Counter:
    def __init__(self) -> None:
        self.commits = 0
        self.busy = threading.Lock()


_COUNTERS: weakref.WeakKeyDictionary[sa.Engine, _Counter] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def after_commit(engine: sa.Engine) -> None:
    """Called by the writer after each committed batch, outside its lock; checkpoints now and then."""
    if not is_sqlite(engine):
        return
    with _GUARD:
        counter = _COUNTERS.get(engine)
        if counter is None:
            counter = _COUNTERS[engine] = _Counter()
        counter.commits += 1
        due = counter.commits % CHECKPOINT_EVERY == 0
    # One checkpoint at a time per engine; a thread that finds one running just goes on.
    if not due or not counter.busy.acquire(blocking=False):
        return
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sa.exc.DBAPIError as exc:  # the data is committed; SQLite's own checkpoint is the backstop
        log.debug("passive checkpoint skipped (%s)", type(exc.orig or exc).__name__)
    finally:
        counter.busy.release()
