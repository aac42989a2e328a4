"""Self time: how much of a run's duration each of its steps accounts for, so that the shares add up.

The one definition (docs/analytics.md, "Latency attribution"): every moment of a finished run, from
its start to its end, goes to the *innermost* steps running at that moment — the running steps none
of whose child steps is running then. When several run at once (parallel children, or parallel
top-level steps) they split that moment evenly; a moment when no step runs is *untraced* (the agent's
own code between steps). A step's self time is the sum of what it got. So:

* a step without children, running alone, gets its whole duration;
* a parent gets its time not covered by the union of its children's intervals (while nothing else
  runs beside it);
* the self times of a run's steps plus its untraced time are exactly its duration — nothing is
  counted twice, and overlaps cannot push the sum past 100 %.

Intervals are clipped before they are attributed: a top-level step to its run, a child to its
(clipped) parent, so a child that outlives its parent (or a clock that disagrees) cannot add time. A
``parent_seq`` naming no step of the run (the parent has not arrived yet) or closing a cycle makes
the step top-level. Times are integer microseconds (exact on both databases); the result is in
milliseconds.

``self_times`` is the definition, a pure function of one run's steps; ``SelfTimeSums`` applies it to
step rows of whole runs as they stream from the database and sums the results by group. Self time is
stored once a run has finished (``store/sql/rollup/attribution.py``, which every reader of self time goes
through) rather than with each step, because a step's self time depends on every other step of its run
that overlaps it — a parent, a late child, a parallel sibling — which arrive in any order and in any
batch: ingest never reads or rewrites stored steps for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from agenttracer.model import RunStatus
from agenttracer.store.sql.dialect import epoch_micros, epoch_micros_reader, holds_whole_result, streams_ordered_join
from agenttracer.store.sql.schema.tables import runs, steps

# (seq, parent_seq, started_at µs, ended_at µs)
StepInterval = tuple[int, int | None, int, int]

_UNSEEN, _OPEN, _DONE = 0, 1, 2


def _clip(start: int, end: int, steps: Sequence[StepInterval]) -> tuple[list[int], list[int], list[int], list[int]]:
    """Each step's parent index (-1: top-level), depth, and interval clipped to its parent's (or the run)."""
    n = len(steps)
    index = {seq: i for i, (seq, *_rest) in enumerate(steps)}
    parent = [index.get(p, -1) if p is not None else -1 for _, p, _, _ in steps]
    lo, hi, depth = [0] * n, [0] * n, [0] * n
    state = [_UNSEEN] * n
    for i in range(n):
        path = []
        j = i
        while state[j] == _UNSEEN:
            state[j] = _OPEN
            path.append(j)
            p = parent[j]
            if p < 0:
                break
            if state[p] == _OPEN:  # a cycle: the step that closes it is taken as top-level
                parent[j] = -1
                break
            j = p
        for j in reversed(path):
            p = parent[j]
            plo, phi, d = (start, end, 0) if p < 0 else (lo[p], hi[p], depth[p] + 1)
            a = max(steps[j][2], plo)
            lo[j], hi[j], depth[j] = a, max(a, min(steps[j][3], phi)), d
            state[j] = _DONE
    return parent, depth, lo, hi


def self_times(start: int, end: int, steps: Sequence[StepInterval]) -> tuple[list[float], float]:
    """Self time (ms) of each of a run's steps, in the order given, and the run's untraced time (ms).

    ``start``/``end`` bound the run; step times are microseconds since any fixed epoch.
    """
    n = len(steps)
    if n == 0:
        return [], max(0, end - start) / 1000.0
    sequential = _sequential(start, end, steps)
    if sequential is not None:
        return sequential
    parent, depth, lo, hi = _clip(start, end, steps)
    # Ends before starts at the same instant; a child ends before its parent and starts after it.
    events = sorted([(lo[i], 1, depth[i], i) for i in range(n) if hi[i] > lo[i]]
                    + [(hi[i], 0, -depth[i], i) for i in range(n) if hi[i] > lo[i]])
    acc = [0.0] * n
    running_children = [0] * n
    entered = [0.0] * n  # the share counter when a step became innermost
    innermost = [False] * n
    # share: what one innermost step has received since the run started (µs). A step that is innermost
    # from share a to share b receives b - a: O(1) per event, whatever the number of parallel steps.
    share = 0.0
    count = 0  # innermost steps now
    untraced = 0
    previous = start
    for t, is_start, _d, i in events:
        if t > previous:
            if count:
                share += (t - previous) / count
            else:
                untraced += t - previous
            previous = t
        p = parent[i]
        if is_start:
            innermost[i], entered[i] = True, share
            count += 1
            if p >= 0:
                running_children[p] += 1
                if innermost[p]:
                    innermost[p] = False
                    acc[p] += share - entered[p]
                    count -= 1
        else:
            if innermost[i]:
                innermost[i] = False
                acc[i] += share - entered[i]
                count -= 1
            if p >= 0:
                running_children[p] -= 1
                if not running_children[p]:
                    innermost[p], entered[p] = True, share
                    count += 1
    untraced += max(0, end - previous)
    return [a / 1000.0 for a in acc], untraced / 1000.0


def _sequential(start: int, end: int, steps: Sequence[StepInterval]) -> tuple[list[float], float] | None:
    """The common flat case — no step has a parent, none overlaps another — where each step's self time is
    its interval clipped to the run; None otherwise."""
    if any(p is not None for _, p, _, _ in steps):
        return None
    order = sorted(range(len(steps)), key=lambda i: steps[i][2])
    out = [0.0] * len(steps)
    reached = start
    covered = 0
    for i in order:
        a, b = max(steps[i][2], start), min(steps[i][3], end)
        if b <= a:
            continue
        if a < reached:
            return None
        out[i] = (b - a) / 1000.0
        covered += b - a
        reached = b
    return out, max(0, end - start - covered) / 1000.0


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
