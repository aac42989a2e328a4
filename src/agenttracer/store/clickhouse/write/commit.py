"""Group commit: the inserts of writes that run at the same time, combined into one per table.

Every ClickHouse insert makes a new part, and a part has a fixed cost (measured with chdb: ~10 ms of
CPU whatever its size, then ~15-20 µs a row); ClickHouse's own advice is few, large inserts. An ingest
process handles several requests at once (one thread each), and each would otherwise insert its steps
and then its runs. Here a write hands its rows over and waits: one waiting writer (the leader) inserts
the steps of every write queued so far in one insert, then their runs in one insert, and wakes them.
Writes queued while it inserts go in the next round, led by one of them.

A write may announce itself before it reads (``coming``): a leader then waits for the announced writes
still reading, up to ``LINGER_S``, so that the requests handled at the same moment share one round
instead of each leading its own (every part costs the same ~5-10 ms of the engine whatever its size;
measured with bench/clickhouse_ingest_statements.py). A write alone never waits: nothing is announced.

What a write is promised is unchanged:

* **acknowledged = stored**: ``insert`` returns only after the insert that carried its rows returned;
  it raises when that insert failed (nothing acknowledged, the client sends again);
* **steps before runs**: a round inserts its steps before its runs, so a run row is never ahead of
  its steps;
* **one write's rows are refused alone**: when a combined insert fails, each write of the round is
  inserted on its own, so a write the database refuses (a broken CHECK) fails only itself;
* each insert carries a deduplication token of its own.

Rounds belong to one connection (one database); writes into another connection group separately.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agenttracer.store.clickhouse.connection import ClickHouseError, Connection
from agenttracer.store.clickhouse.write.rows import RUN_COLUMNS, STEP_COLUMNS

Row = tuple[Any, ...]

# The longest a leader waits for announced writes: about one batch's reads (bench figures above).
LINGER_S = 0.03


@dataclass(slots=True)
class _Write:
    steps: Sequence[Row]
    runs: Sequence[Row]
    done: bool = False
    stored: bool = False
    error: Exception | None = None


@dataclass(slots=True)
class _Group:
    """The writes of one connection waiting for the next round, and whether a round is under way."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    queued: list[_Write] = field(default_factory=list)
    busy: bool = False
    coming: int = 0  # announced writes that have not queued yet


@dataclass(slots=True)
class Ticket:
    """An announced write (``coming``); ``insert`` takes it off the count."""

    group: _Group
    pending: bool = True

    def arrive(self) -> None:
        """Called with ``group.cond`` held: this write is queued (or gives up), leaders stop waiting for it."""
        if self.pending:
            self.pending = False
            self.group.coming -= 1
            self.group.cond.notify_all()


_groups: weakref.WeakKeyDictionary[Any, _Group] = weakref.WeakKeyDictionary()
_groups_lock = threading.Lock()


def _group(conn: Connection) -> _Group:
    with _groups_lock:
        group = _groups.get(conn)
        if group is None:
            group = _groups[conn] = _Group()
        return group


@contextmanager
def coming(conn: Connection) -> Iterator[Ticket]:
    """Announce a write that will call ``insert`` (with the ticket) once it has read what it needs;
    leaving without inserting withdraws it."""
    group = _group(conn)
    ticket = Ticket(group)
    with group.cond:
        group.coming += 1
    try:
        yield ticket
    finally:
        with group.cond:
            ticket.arrive()


def insert(conn: Connection, steps: Sequence[Row], runs: Sequence[Row], ticket: Ticket | None = None) -> None:
    """Store ``steps`` (STEP_COLUMNS rows) and then ``runs`` (RUN_COLUMNS rows), possibly in the same
    inserts as other writes running now; returns once they are stored, raises if they were not."""
    group = _group(conn)
    if not steps and not runs:
        if ticket is not None:
            with group.cond:
                ticket.arrive()
        return
    mine = _Write(steps, runs)
    with group.cond:
        group.queued.append(mine)
        if ticket is not None:
            ticket.arrive()
        while not mine.done:
            if group.busy:
                group.cond.wait()
                continue
            group.busy = True
            try:
                deadline = time.monotonic() + LINGER_S
                while group.coming > 0 and (left := deadline - time.monotonic()) > 0:
                    group.cond.wait(left)
            except BaseException:
                # Nothing is inserted yet: whatever ends the wait early, the group must not stay busy
                # (every later write of the process would wait for ever), and this write, not stored,
                # leaves the queue so that its caller's error is the whole truth.
                group.busy = False
                group.queued = [write for write in group.queued if write is not mine]
                group.cond.notify_all()
                raise
            round_, group.queued = group.queued, []
            group.cond.release()
            try:
                _insert_round(conn, round_)
            finally:
                group.cond.acquire()
                group.busy = False
                for write in round_:
                    write.done = True
                group.cond.notify_all()
    if mine.error is not None:
        raise mine.error
    if not mine.stored:  # the round's leader was interrupted before it got to these rows
        raise ClickHouseError("the insert was interrupted")


def _insert_round(conn: Connection, round_: list[_Write]) -> None:
    """Insert the round's steps, then its runs; past a failed combined insert, each write on its own."""
    try:
        _insert(conn, "steps", STEP_COLUMNS, [row for write in round_ for row in write.steps])
    except Exception:
        for write in round_:
            _alone(conn, write, steps=True)
        return
    try:
        _insert(conn, "runs", RUN_COLUMNS, [row for write in round_ for row in write.runs])
    except Exception:
        for write in round_:
            _alone(conn, write, steps=False)
        return
    for write in round_:
        write.stored = True


def _alone(conn: Connection, write: _Write, *, steps: bool) -> None:
    try:
        if steps:
            _insert(conn, "steps", STEP_COLUMNS, write.steps)
        _insert(conn, "runs", RUN_COLUMNS, write.runs)
    except Exception as exc:
        write.error = exc
    else:
        write.stored = True


def _insert(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
    if rows:
        conn.insert(table, columns, rows, token=uuid.uuid4().hex)
