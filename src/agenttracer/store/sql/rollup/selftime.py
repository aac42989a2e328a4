"""Self time on the SQL store: the step rows of whole runs streamed from the database and summed by group.

The definition is ``store/self_time.py`` (``self_times``); ``SelfTimeSums`` applies it to step rows of whole
runs as they stream from the database and sums the results by group. Self time is stored once a run has
finished (``store/sql/rollup/attribution.py``, which every reader of self time goes through) rather than with
each step, because a step's self time depends on every other step of its run that overlaps it — a parent, a
late child, a parallel sibling — which arrive in any order and in any batch: ingest never reads or rewrites
stored steps for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from agenttracer.model import RunStatus
from agenttracer.store.self_time import self_times
from agenttracer.store.sql.dialect import epoch_micros, epoch_micros_reader, holds_whole_result, streams_ordered_join
from agenttracer.store.sql.schema.tables import runs, steps


def timed_run() -> sa.ColumnElement[bool]:
    """Runs that have a duration to attribute: finished, with both ends known."""
    return sa.and_(runs.c.status != RunStatus.RUNNING.value, runs.c.duration_ms.is_not(None),
                   runs.c.started_at.is_not(None), runs.c.ended_at.is_not(None))


def interval_columns(conn: sa.Connection) -> list[sa.ColumnElement[Any]]:
    """What ``SelfTimeSums`` reads of a step row (from ``steps`` joined to ``runs``): run id, seq, parent
    seq, the step's start and end and the run's start and end (microseconds)."""
    return [steps.c.run_id, steps.c.seq, steps.c.parent_seq, *(epoch_micros(conn, c) for c in (
        steps.c.started_at, steps.c.ended_at, runs.c.started_at, runs.c.ended_at))]


# On PostgreSQL the rows of one run come together when ordered so (the runs' (started_at, run_id) index gives
# the order), and a run is summed as soon as its last row has passed: memory stays bounded by a chunk and
# the largest run. SQLite sorts such a join in a temporary B-tree (it tripled a rolled-up answer's raw part),
# so there the rows of the runs read are kept until the end and summed then.
RUN_ORDER = (runs.c.started_at, runs.c.run_id)
CHUNK_ROWS = 10_000


def run_order(conn: sa.Connection) -> tuple[sa.ColumnElement[Any], ...]:
    """The ORDER BY that ``SelfTimeSums`` wants on this database (none on SQLite)."""
    return RUN_ORDER if streams_ordered_join(conn) else ()


class SelfTimeSums:
    """Sums of self time (ms) by ``row[:nk]`` over step rows of timed runs, fed in chunks (in ``run_order``);
    ``at`` is where a row's ``interval_columns`` start."""

    def __init__(self, conn: sa.Connection, nk: int, at: int) -> None:
        self.sums: dict[tuple[Any, ...], float] = {}
        self._us = epoch_micros_reader(conn)
        self._ordered = streams_ordered_join(conn)
        self._nk, self._at = nk, at
        self._run: Any = None
        self._rows: list[Sequence[Any]] = []
        self._by_run: dict[Any, list[Sequence[Any]]] = {}

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        at = self._at
        if not self._ordered:
            by_run = self._by_run
            for row in rows:
                found = by_run.get(row[at])
                if found is None:
                    by_run[row[at]] = [row]
                else:
                    found.append(row)
            return
        for row in rows:
            if row[at] != self._run:
                self._sum_run(self._rows)
                self._rows = []
                self._run = row[at]
            self._rows.append(row)

    def finish(self) -> dict[tuple[Any, ...], float]:
        self._sum_run(self._rows)
        self._rows = []
        for group in self._by_run.values():
            self._sum_run(group)
        self._by_run = {}
        return self.sums

    def _sum_run(self, group: list[Sequence[Any]]) -> None:
        if not group:
            return
        us, at, nk, sums = self._us, self._at, self._nk, self.sums
        first = group[0]
        times, _untraced = self_times(us(first[at + 5]), us(first[at + 6]), [
            (row[at + 1], row[at + 2], us(row[at + 3]), us(row[at + 4])) for row in group
        ])
        for row, ms in zip(group, times, strict=True):
            key = tuple(row[:nk])
            sums[key] = sums.get(key, 0.0) + ms


# Up to this many step rows, PostgreSQL's rows are fetched at once as the driver's tuples; above it, through
# a server-side cursor in chunks, so that memory stays bounded (SQLAlchemy's Row objects, slower).
PG_FETCH_ALL_MAX = 200_000


def stream_rows(conn: sa.Connection, query: sa.Select[Any], expected: int) -> Iterator[Sequence[Sequence[Any]]]:
    """The rows of ``query`` in chunks (``expected``: about how many). Self time reads every step row of the
    runs it covers, so this is its hot loop: the driver's plain tuples where possible — SQLAlchemy's Row
    objects cost about a third of the fetch, and the columns read here need no conversion
    (``dialect.epoch_micros``). SQLite's cursor steps through the result as it is read: always chunked. PostgreSQL's
    client holds a whole result: a server-side cursor above PG_FETCH_ALL_MAX rows."""
    if holds_whole_result(conn) and expected > PG_FETCH_ALL_MAX:
        yield from conn.execute(query.execution_options(yield_per=CHUNK_ROWS)).partitions()
        return
    result = conn.execute(query)
    try:
        while chunk := result.cursor.fetchmany(CHUNK_ROWS):
            yield chunk
    finally:
        result.close()
