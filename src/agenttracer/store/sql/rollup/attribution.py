"""Stored self time: each finished run's self time per (step type, name), computed once and summed in SQL.

Self time (``store/self_time.py``) is a function of a whole run — every step that overlaps a
step, and the run's bounds — so it cannot be known when a step is written, whose parent, late child or
parallel sibling may come in any later batch. The rollup refreshers compute it instead, once a run has
finished: ``attribute`` is called for the runs of each bucket they recompute (``refresh.py`` for an
hour, ``live.py`` for 10-second buckets), and writes one ``step_self_time`` row per run and (step_type,
name), with what the computation read of the run: its step count and its two ends. Nothing else moves a
run's self time — steps are only ever added (a parent adopted later comes with a new step), never
changed — so a row counts while those three still equal the run's; a late step or a late end makes the
run's rows stale, and marks the run's bucket dirty, so the refresher's next pass recomputes them.

``self_time_sums`` is what every reader of self time calls (the rollup build, the raw parts of
``/v1/stats``, the exact per-step stats): the stored rows of the runs whose stamp is current, summed by
the database, plus — for finished runs not attributed yet (a refresher has not passed since they
changed) — self time computed from their steps on the spot, by the same definition. So answers are
exact whether or not a refresher has run, and cheap once it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from agenttracer.store.sql.dialect import has_lateral, is_postgres, stored_timestamp
from agenttracer.store.sql.rollup.selftime import SelfTimeSums, interval_columns, run_order, stream_rows, timed_run
from agenttracer.store.sql.schema.tables import runs, step_self_time, steps

_ROW_COLUMNS = ("run_id", "step_type", "name", "self_ms", "run_steps", "run_started_at", "run_ended_at")


def _current(a: sa.Table) -> sa.ColumnElement[bool]:
    """A stored row of the run it names, computed from what the run is now."""
    return sa.and_(a.c.run_id == runs.c.run_id, a.c.run_steps == runs.c.step_count,
                   a.c.run_started_at == runs.c.started_at, a.c.run_ended_at == runs.c.ended_at)


def attributed() -> sa.ColumnElement[bool]:
    """Runs whose stored self time is current."""
    return sa.exists().where(_current(step_self_time))


# Runs named to the steps query at a time: their steps are found by primary key.
RUN_CHUNK = 5_000


def _pending(conn: sa.Connection, where: Sequence[sa.ColumnElement[bool]]) -> list[tuple[str, int]]:
    """(run_id, step count) of the finished runs matching ``where`` without current rows, in run order.

    Asked of the runs alone, one primary-key probe per run — on PostgreSQL through LATERAL ... LIMIT 1
    (not flattened): as NOT EXISTS or a join, the planner hashed the whole table whenever it was small
    or not analyzed yet (each hour of a first build, while the table fills), and read every step of
    the runs before it dropped those already attributed.
    """
    query = sa.select(runs.c.run_id, runs.c.step_count)
    if has_lateral(conn):
        found = sa.select(sa.literal(1).label("found")).where(_current(step_self_time)).limit(1).lateral("found")
        query = query.select_from(runs.outerjoin(found, sa.true())).where(found.c.found.is_(None))
    else:
        query = query.where(~attributed())
    rows = conn.execute(query.where(*where, timed_run(), runs.c.step_count > 0).order_by(*run_order(conn)))
    return [(run_id, int(n)) for run_id, n in rows]


def _steps_of(
    conn: sa.Connection, pending: list[tuple[str, int]], columns: list[sa.ColumnElement[Any]]
) -> Iterator[Sequence[Sequence[Any]]]:
    """``columns`` of the steps (joined to their runs) of the ``pending`` runs, in chunks, each run whole
    and in run order."""
    for i in range(0, len(pending), RUN_CHUNK):
        part = pending[i:i + RUN_CHUNK]
        query = (
            sa.select(*columns)
            .select_from(steps.join(runs, steps.c.run_id == runs.c.run_id))
            .where(runs.c.run_id.in_([run_id for run_id, _ in part]))
            .order_by(*run_order(conn))
        )
        yield from stream_rows(conn, query, sum(n for _, n in part))


def attribute(conn: sa.Connection, where: list[sa.ColumnElement[bool]]) -> int:
    """Compute and store the self time of the finished runs matching ``where`` (conditions on ``runs``) that
    have no current rows; return how many runs were attributed. For the refreshers, in their transaction."""
    pending = _pending(conn, where)
    if not pending:
        return 0
    ends = (stored_timestamp(conn, runs.c.started_at), stored_timestamp(conn, runs.c.ended_at))
    keys = [runs.c.run_id, runs.c.step_count, *ends, steps.c.step_type, steps.c.name]
    sums = SelfTimeSums(conn, len(keys), len(keys))
    for chunk in _steps_of(conn, pending, [*keys, *interval_columns(conn)]):
        sums.add(chunk)
    rows = sorted((run_id, step_type, name, ms, n, started, ended)
                  for (run_id, n, started, ended, step_type, name), ms in sums.finish().items())
    _replace(conn, rows)
    return len({row[0] for row in rows})


def _replace(conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Store ``rows``, replacing the runs' earlier rows: an upsert is enough, because steps are only ever
    added, so a run's (step type, name) pairs now include every pair it had (straight to the driver: an
    hour's worth through SQLAlchemy's per-row parameter handling cost more than computing them)."""
    if not rows:
        return
    names = ", ".join(_ROW_COLUMNS)
    upsert = (" ON CONFLICT (run_id, step_type, name) DO UPDATE SET "
              + ", ".join(f"{c} = excluded.{c}" for c in _ROW_COLUMNS[3:]))
    if is_postgres(conn):
        conn.exec_driver_sql(
            f"INSERT INTO step_self_time ({names}) SELECT * FROM unnest(%s::varchar[], %s::varchar[],"
            " %s::varchar[], %s::float8[], %s::int[], %s::timestamptz[], %s::timestamptz[])" + upsert,
            tuple(list(c) for c in zip(*rows, strict=True)),
        )
        return
    conn.exec_driver_sql(f"INSERT INTO step_self_time ({names}) VALUES (?, ?, ?, ?, ?, ?, ?)" + upsert, rows)


def self_time_sums(
    conn: sa.Connection, where: list[sa.ColumnElement[bool]], keys: list[sa.ColumnElement[Any]]
) -> dict[tuple[Any, ...], float]:
    """Summed self time (ms) of the steps of the finished runs matching ``where`` (conditions on ``runs``), by
    ``keys`` (per-run expressions) + (step_type, name). Keys are returned as the driver gives them."""
    a = step_self_time
    own: sa.FromClause
    if has_lateral(conn):
        # A probe of the primary key per run, whatever the planner thinks of the table's size (``_pending``);
        # OFFSET 0 keeps PostgreSQL from flattening the subquery into a join that hashes the whole table.
        own = sa.select(a.c.step_type, a.c.name, a.c.self_ms).where(_current(a)).offset(0).lateral("own")
        source = runs.join(own, sa.true())
    else:
        own, source = a, a.join(runs, _current(a))
    stored = conn.execute(
        sa.select(*keys, own.c.step_type, own.c.name, sa.func.sum(own.c.self_ms))
        .select_from(source)
        .where(*where, timed_run())
        .group_by(*keys, own.c.step_type, own.c.name)
    )
    nk = len(keys) + 2
    sums: dict[tuple[Any, ...], float] = {tuple(row[:nk]): float(row[nk]) for row in stored}
    _add(sums, _computed_sums(conn, where, keys).items())
    return sums


def _add(into: dict[tuple[Any, ...], float], items: Iterable[tuple[tuple[Any, ...], float]]) -> None:
    for key, ms in items:
        into[key] = into.get(key, 0.0) + ms


def _computed_sums(
    conn: sa.Connection, where: Sequence[sa.ColumnElement[bool]], keys: list[sa.ColumnElement[Any]]
) -> dict[tuple[Any, ...], float]:
    """Self time summed as ``self_time_sums`` does, computed from the steps of the runs matching ``where`` that
    have no current stored rows."""
    nk = len(keys) + 2
    sums = SelfTimeSums(conn, nk, nk)
    for chunk in _steps_of(conn, _pending(conn, where), [*keys, steps.c.step_type, steps.c.name,
                                                        *interval_columns(conn)]):
        sums.add(chunk)
    return sums.finish()
