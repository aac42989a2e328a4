"""Read queries behind the Query API: the runs list (keyset pagination), paged run detail and agents.

Every function takes an open ``Connection`` (the Query API's is read-only) and returns plain dicts
keyed by column name, which ``server/wire/query.py`` models validate. Stats and version comparison live in
``store/sql/read/stats.py``.

Pagination is keyset, newest first on ``(started_at, run_id)``: a page never shifts when new runs
arrive, and each page is an index range scan however deep the caller goes. Runs whose ``started_at``
is still unknown sort after every dated run, by run_id. (The writer dates a run from its earliest
event until ``run_start`` arrives; a late ``run_start`` can move a run's start earlier, and a client
paging at that moment may then meet that one run twice or not at all. Every other run is seen once.)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from agenttracer.store.agent_pages import assemble_agents
from agenttracer.store.cursors import Cursor
from agenttracer.store.filters import RunFilters
from agenttracer.store.sql.dialect import is_postgres
from agenttracer.store.sql.read import stats_rollup
from agenttracer.store.sql.read.filters import in_projects, run_conditions
from agenttracer.store.sql.schema.tables import failures, runs, steps

# The columns a run, a step and a failure carry in an answer: all of them in table order, but the
# run's bookkeeping times and the run_id key of its steps and failure.
RUN_DETAIL_COLUMNS = tuple(c.name for c in runs.columns if c.name not in ("ingested_at", "updated_at"))
STEP_DETAIL_COLUMNS = tuple(c.name for c in steps.columns if c.name != "run_id")
FAILURE_DETAIL_COLUMNS = tuple(c.name for c in failures.columns if c.name != "run_id")

_run_cols = [runs.c[name] for name in RUN_DETAIL_COLUMNS]


def _rows(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in result]


def list_runs(
    conn: sa.Connection, filters: RunFilters, *, limit: int, cursor: Cursor | None = None
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """Up to ``limit`` runs matching ``filters``, newest first, after ``cursor``; plus the next cursor."""
    conds = run_conditions(filters)
    items: list[dict[str, Any]] = []
    # Phase 1: dated runs, keyset on (started_at, run_id) descending.
    if cursor is None or cursor.started_at is not None:
        dated = [*conds, runs.c.started_at.is_not(None)]
        if cursor is not None:
            dated.append(
                # A row-value comparison, not (t < x OR (t = x AND id < y)): both databases turn it
                # into one index range, where SQLite ran the OR as two scans plus a sort
                # (bench/query_latency.py, 100 k runs, 10,000 deep: 94 ms -> under 5 ms per page).
                sa.tuple_(runs.c.started_at, runs.c.run_id)
                < sa.tuple_(
                    sa.bindparam(None, cursor.started_at, type_=runs.c.started_at.type),
                    sa.bindparam(None, cursor.run_id, type_=runs.c.run_id.type),
                )
            )
        q = (
            sa.select(*_run_cols)
            .where(*dated)
            .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
            .limit(limit + 1)
        )
        items = _rows(conn.execute(q))
    # Phase 2: the undated tail (time filters exclude it: an unknown start is in no range).
    if len(items) <= limit and filters.since is None and filters.until is None:
        undated = [*conds, runs.c.started_at.is_(None)]
        if cursor is not None and cursor.started_at is None:
            undated.append(runs.c.run_id < cursor.run_id)
        q = sa.select(*_run_cols).where(*undated).order_by(runs.c.run_id.desc()).limit(limit + 1 - len(items))
        items.extend(_rows(conn.execute(q)))
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    last = items[-1]
    return items, Cursor(last["started_at"], last["run_id"])


def runs_with_prefix(conn: sa.Connection, prefix: str, limit: int,
                     projects: tuple[str, ...] | None = None) -> list[str]:
    """Up to ``limit`` run ids of ``projects`` that begin with ``prefix`` (in the stored form: lower
    case, canonical dashes), in id order. One range scan of the primary key: every id that begins with
    the prefix lies between it and the prefix followed by ``g`` (after every hex digit and the dash);
    the exact test in Python removes what a database collation that orders otherwise lets in."""
    found = conn.execute(
        sa.select(runs.c.run_id)
        .where(runs.c.run_id >= prefix, runs.c.run_id < prefix + "g", *in_projects(projects))
        .order_by(runs.c.run_id)
        .limit(limit)
    ).scalars()
    return [run_id for run_id in found if run_id.startswith(prefix)]


def get_run(
    conn: sa.Connection,
    run_id: str,
    *,
    steps_after: int = 0,
    steps_limit: int,
    projects: tuple[str, ...] | None = None,
) -> dict[str, Any] | None:
    """The run, one page of its steps in start order and its failure; None if no such run in
    ``projects`` (a run of another project is not there for this reader).

    Steps come in the run's order: by seq for a run the SDK reported (the SDK numbers steps in start
    order), by start time then seq for a run assembled from OTLP spans (a span keeps the seq of its
    arrival; docs/otlp.md). ``steps_after`` is the seq of the last step of the previous page (0: from
    the start); the page holds the steps after that one in the run's order — one probe of the primary
    key for that step's start, then one ordered index range scan reading at most ``steps_limit + 1``
    rows, so a run of any size costs the same per page. The run's totals (step, error and retry
    counts, duration) come from its own row, which the writer keeps exact, so they describe the whole
    run on every page. ``next_steps_after`` is the seq to pass back as ``steps_after`` for the
    following page, or None after the last one.
    """
    run = conn.execute(sa.select(*_run_cols).where(runs.c.run_id == run_id, *in_projects(projects))).first()
    if run is None:
        return None
    if is_postgres(conn):
        # PostgreSQL estimates a run's steps from the average run, so for a run far longer than that it
        # may pick a bitmap scan, which reads every step after ``steps_after`` and then sorts them for the
        # LIMIT (100,000 steps: 114 ms, growing with the run). Ruling out bitmap scans and sorts for
        # this transaction leaves the ordered index scan, which stops at the LIMIT.
        conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        conn.exec_driver_sql("SET LOCAL enable_sort = off")
    page = sa.select(*[steps.c[name] for name in STEP_DETAIL_COLUMNS]).where(steps.c.run_id == run_id)
    first = conn.execute(
        sa.select(steps.c.span_id).where(steps.c.run_id == run_id).order_by(steps.c.seq).limit(1)).first()
    if first is not None and first[0] is not None:
        # Spans: the partial index over OTLP steps (run_id, started_at, seq), after the given step.
        page = page.where(steps.c.span_id.isnot(None)).order_by(steps.c.started_at, steps.c.seq)
        if steps_after:
            start = conn.execute(sa.select(steps.c.started_at).where(
                steps.c.run_id == run_id, steps.c.seq == steps_after)).scalar()
            if start is None:
                page = page.where(sa.false())  # no such step: nothing comes after it
            else:
                page = page.where(sa.or_(steps.c.started_at > start,
                                         sa.and_(steps.c.started_at == start, steps.c.seq > steps_after)))
    else:
        page = page.where(steps.c.seq > steps_after).order_by(steps.c.seq)
    step_rows = _rows(conn.execute(page.limit(steps_limit + 1)))
    next_after = None
    if len(step_rows) > steps_limit:
        del step_rows[steps_limit:]
        next_after = step_rows[-1]["seq"]
    failure = conn.execute(
        sa.select(*[failures.c[name] for name in FAILURE_DETAIL_COLUMNS]).where(failures.c.run_id == run_id)
    ).first()
    return {
        "run": dict(run._mapping),
        "steps": step_rows,
        "next_steps_after": next_after,
        "failure": dict(failure._mapping) if failure is not None else None,
    }


def list_agents(conn: sa.Connection, projects: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every agent of ``projects`` with its versions and environments, run counts and last-seen times,
    newest first (an agent in several of them is counted over all of them).

    Counts come from the rollups for the hours they hold (exact: ``stats_rollup.agent_counts``)
    and from ``runs`` for the rest; from ``runs`` alone while nothing is rolled up.
    """
    q = (
        sa.select(
            runs.c.agent_id,
            runs.c.agent_version,
            runs.c.environment,
            sa.func.count().label("run_count"),
            sa.func.max(runs.c.started_at).label("last_seen"),
        )
        .where(*in_projects(projects), runs.c.agent_id.is_not(None))
        .group_by(runs.c.agent_id, runs.c.agent_version, runs.c.environment)
    )
    rolled = stats_rollup.agent_counts(conn, projects)
    rows: Any = (
        conn.execute(q) if rolled is None
        else [(*identity, agg.runs, agg.last_started_at) for identity, agg in rolled.items()]
    )
    return assemble_agents(rows)


def ping(conn: sa.Connection) -> None:
    """Raise if the database cannot answer a trivial query through this connection."""
    conn.execute(sa.select(sa.func.count()).select_from(sa.select(runs.c.run_id).limit(1).subquery()))
