"""The newest runs matching filters, a page at a time, merging only the page's stretch of the table.

The runs list and the compare sample want the first ``limit`` runs, newest first, whose newest version
matches some filters. ``FINAL`` over every matching run merges every part of the table to keep a page.
Here the page's statement first finds (a scalar subquery, evaluated before the read is planned) the
``started_at`` of the ``rows``-th newest row that could belong to the answer, and ``FINAL`` then merges
only the runs started since: a bound on a sorting-key column, so ClickHouse reads only those granules,
and every version of a run lies inside it (the versions at one key share its ``started_at``).

Which rows could belong: any row of a run whose newest version matches has that version among them,
so the conditions on the newest version (status, failure, ``also``) and ``is_deleted = 0`` hold for at
least one row of every run in the answer, and a row test on them keeps a superset. Whatever the bound,
a full page is the right page: every answer left out of the stretch started earlier than all in it.
A page can come out short only when more than ``rows - limit`` of those rows are old versions or runs
whose newest version no longer matches; then the stretch is widened and the page read again, until the
page is full or the stretch holds every candidate.

Finding that bound reads ``started_at`` (not a prefix of the sorting key) of every candidate row: the
whole table. So the search first looks only at the rows started in the last stretch of time that
should hold them (from the table's span and size, in its parts' metadata), widened eightfold while
it holds fewer than ``rows`` candidates: a bound on ``started_at`` prunes partitions and granules, and
a page reads what it shows, not the table. The bound it finds is the same: the ``rows`` newest
candidates all started in a stretch that holds ``rows`` of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agenttracer.store.clickhouse.newest import HOUR_US, Params, Queryable, at, fetch, latest_runs, us, where
from agenttracer.store.clickhouse.read.filters import newest, stable, time_window
from agenttracer.store.filters import RunFilters

# Candidate rows per run of the page: a run is stored as a few versions (started, ended, re-judged).
ROWS_PER_RUN = 4
WIDEN = 8
# The first stretch searched holds this many times the candidate rows an even spread of the table would give.
SPREAD_MARGIN = 32

# The runs table's newest and oldest start (µs) and its row count, from its parts' metadata.
Span = tuple[int, int, int]


def table_span(client: Queryable) -> Span:
    """The runs table's ``Span``: what sizes the first stretch a page's bound is searched in."""
    top, bottom, total = fetch(client, f"SELECT {us('max(started_at)')}, {us('min(started_at)')}, count() FROM runs")[0]
    return (int(top), int(bottom), int(total)) if total else (0, 0, 0)


def newest_first(client: Queryable, f: RunFilters, select: str, columns: Sequence[str], params: Params, limit: int,
                 *, keyset: Sequence[str] = (), before: Sequence[str] = (),
                 also: Sequence[str] = (), latest: int | None = None,
                 span: Span | None = None) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows of ``select`` (over ``columns`` of the runs' newest versions) for the runs
    matching ``f`` and ``also`` (conditions on the newest version), after ``keyset`` (conditions on the
    sorting key; ``before``: a looser form of them for finding the bound, or the same; ``latest``: the
    latest start they let through, in microseconds), ordered by ``started_at`` then ``run_id``, newest
    first. ``span``: the table's ``table_span`` when the caller has it already."""
    pre = [*stable(f, params), *time_window(f, params)]
    post = [*newest(f, params), *also]
    rows = max(limit * ROWS_PER_RUN, 64)
    top, bottom, total = span or table_span(client)
    if total == 0:
        return []
    top = min([int(top), *(t for t in (latest, params.get("until")) if t is not None)])
    width = max(HOUR_US, (int(top) - int(bottom)) * rows * SPREAD_MARGIN // int(total))
    while True:
        # Only rows started since the floor are searched for the bound; widened while too few are there.
        floor = int(top) - width
        params["floor"] = floor
        within = ["1"] if floor <= bottom else [f"started_at >= {at('floor')}"]
        candidates = where([*pre, *(before or keyset), *within, *post, "is_deleted = 0"])
        params["bound_rows"] = rows
        bound = (f"(SELECT (count(), min(started_at)) FROM (SELECT started_at FROM runs WHERE {candidates} "
                 "ORDER BY started_at DESC LIMIT {bound_rows:UInt64}))")
        stretch = latest_runs(columns, [*pre, *keyset, "bound.1 > 0", "started_at >= bound.2"])
        page = fetch(client, f"WITH {bound} AS bound SELECT {select}, bound.1 FROM {stretch} AND {where(post)} "
                             f"ORDER BY started_at DESC, run_id DESC LIMIT {limit}", params)
        if len(page) >= limit:
            return [row[:-1] for row in page]
        found = page[0][-1] if page else fetch(
            client, f"SELECT count() FROM (SELECT 1 FROM runs WHERE {candidates} LIMIT {{bound_rows:UInt64}})",
            params)[0][0]
        if found >= rows:
            rows *= WIDEN
        elif floor > bottom:
            width *= WIDEN
        else:
            return [row[:-1] for row in page]
