"""Dialect-aware SQL building blocks for analytics: percentiles, rank sums, run shapes, time buckets.

Each helper takes a *source* subquery whose columns are named by convention (``v`` for the value,
``k0``, ``k1``… for grouping keys, ``grp`` for the 0/1 base/candidate flag) and returns plain
Python values. PostgreSQL aggregates with ``percentile_cont`` and ``string_agg``; SQLite, which
has neither, gets an exactly equivalent path built on window functions, so both databases return
identical numbers for the same rows. Nothing here pulls whole tables into Python: at most a few
rows per group come back.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from agenttracer.store.compare_assembly import SHAPE_SEPARATOR
from agenttracer.store.results import Percentiles
from agenttracer.store.sql.dialect import is_postgres
from agenttracer.store.stats_math import QUANTILES, Key, interpolate, quantile_positions


def _keys(src: sa.Subquery) -> list[sa.ColumnElement[Any]]:
    return [c for c in src.c if c.name.startswith("k")]


ANALYTICS_WORK_MEM = "32MB"


def tune(conn: sa.Connection) -> None:
    """Prepare a connection for one analytics answer: every statement after this reads the same snapshot,
    and (PostgreSQL) sorts get enough memory to stay off disk (reset at transaction end).

    Call it before the connection's first statement. A stats answer adds rollup rows, raw edge hours
    and per-step numbers read by several statements; without one snapshot, a batch committed between
    two of them would be counted in one part and not in another.
    """
    if is_postgres(conn):
        if not conn.in_transaction():
            # READ COMMITTED (the default) takes a new snapshot per statement; REPEATABLE READ keeps the
            # first one for the transaction. Read-only, so it can never fail to serialize.
            conn.execution_options(isolation_level="REPEATABLE READ")
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{ANALYTICS_WORK_MEM}'")
        conn.exec_driver_sql("SET LOCAL random_page_cost = 1.1")
        # Measured with bench/benchlib/explain_stats.py at 1 M runs / 10 M steps: JIT compiled for
        # 30-50 ms per statement to save less than that, and parallel workers cost more to start
        # than they saved on the bounded per-step scan (stats over 24 h 263 -> 182 ms, 30 days
        # 1,286 -> 919 ms).
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        return
    # SQLite: the driver opens no transaction for SELECTs, so each statement would read the newest
    # commit. An explicit (deferred) BEGIN makes the first read fix a WAL snapshot until the connection
    # ends its transaction; writers are not blocked by it.
    if not getattr(conn.connection.dbapi_connection, "in_transaction", True):
        conn.exec_driver_sql("BEGIN")


_SEPARATOR = "\x1f"  # ASCII unit separator: not in any run id or name in practice (checked, never assumed)


def one_of(conn: sa.Connection, column: sa.ColumnElement[Any], values: list[str]) -> sa.ColumnElement[bool]:
    """``column`` is one of ``values``: one constant array on PostgreSQL, an expanding IN on SQLite."""
    if is_postgres(conn):
        # (An empty string would split to nothing, so lists holding one take the array path too.)
        if "" not in values and not any(_SEPARATOR in v for v in values):
            # One text parameter that the server splits: the driver quotes no elements (~5 µs each for
            # thousands of run ids), and string_to_array of a constant folds to a constant array at
            # planning, so = ANY stays an index condition and a hashed lookup.
            return column == sa.any_(sa.func.string_to_array(sa.literal(_SEPARATOR.join(values)), _SEPARATOR))
        return column == sa.any_(sa.literal(values, type_=postgresql.ARRAY(sa.String())))
    return column.in_(values)


class Members:
    """A set of run ids, usable as a condition on any run_id column.

    PostgreSQL gets the ids themselves as one array parameter (``ids``, fetched already): given the
    limited subqueries instead, its planner misjudges the joins and scans every step; with a constant
    array, ``= ANY`` is a hashed lookup even where no index applies (e.g. in a CASE). SQLite plans the
    subqueries (``selects``, one-column limited selects of the same ids) well, so they stay in the
    statement.
    """

    def __init__(self, conn: sa.Connection, selects: list[sa.Select[Any]], ids: list[str]) -> None:
        self._conn = conn
        self._ids: list[str] | None = None
        self._union: sa.Subquery | None = None
        if is_postgres(conn):
            self._ids = ids
        else:
            parts = [sa.select(sub.c[0]) for sub in (s.subquery() for s in selects)]
            self._union = sa.union_all(*parts).subquery() if len(parts) > 1 else selects[0].subquery()

    def on(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        if self._ids is not None:
            return one_of(self._conn, column, self._ids)
        assert self._union is not None
        return column.in_(sa.select(self._union.c[0]))


def bytewise(conn: sa.Connection, column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """``column`` compared byte by byte, for sorts that only group equal values (not a display order).

    PostgreSQL sorts text in the database's collation (e.g. C.UTF-8, through strcoll), several
    times slower than memcmp under COLLATE "C"; SQLite compares bytes already (BINARY).
    """
    return column.collate("C") if is_postgres(conn) else column


def percentiles_aggregate(value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """PostgreSQL only: ``percentile_cont(ARRAY[QUANTILES]) WITHIN GROUP (ORDER BY value)``, one sort for all."""
    array = postgresql.ARRAY(sa.Float())
    return sa.func.percentile_cont(sa.literal(list(QUANTILES), type_=array), type_=array).within_group(value)


def grouped_percentiles(conn: sa.Connection, src: sa.Subquery) -> dict[Key, Percentiles]:
    """p50/p95/p99 of ``src.c.v`` per group of key columns (one group, key ``()``, without keys).

    NULL values are ignored, as ``percentile_cont`` does.
    """
    keys = _keys(src)
    if is_postgres(conn):
        stmt = sa.select(*keys, percentiles_aggregate(src.c.v).label("ps")).where(src.c.v.is_not(None)).group_by(*keys)
        # Without keys an aggregate over no rows still returns one row, holding NULL.
        return {tuple(row[:-1]): Percentiles.of(row[-1]) for row in conn.execute(stmt) if row[-1] is not None}
    return _sqlite_percentiles(conn, src, keys)


def _sqlite_percentiles(
    conn: sa.Connection, src: sa.Subquery, keys: list[sa.ColumnElement[Any]]
) -> dict[Key, Percentiles]:
    # Number the sorted values of each group, then fetch only the order statistics around each
    # quantile's position (floor and floor + 1); Python interpolates exactly as PostgreSQL does.
    partition = keys or None
    ranked = sa.select(
        *keys,
        src.c.v,
        (sa.func.row_number().over(partition_by=partition, order_by=src.c.v) - 1).label("i"),
        sa.func.count().over(partition_by=partition).label("n"),
    ).where(src.c.v.is_not(None)).subquery()
    near = []
    for q in QUANTILES:
        floor_pos = sa.cast(q * (ranked.c.n - 1), sa.Integer)
        near.append(sa.and_(ranked.c.i >= floor_pos, ranked.c.i <= floor_pos + 1))
    rk = _keys(ranked)
    stmt = sa.select(*rk, ranked.c.i, ranked.c.n, ranked.c.v).where(sa.or_(*near))
    groups: dict[Key, tuple[int, dict[int, float]]] = {}
    for row in conn.execute(stmt):
        key = tuple(row[: len(rk)])
        i, n, v = row[len(rk)], row[len(rk) + 1], row[len(rk) + 2]
        groups.setdefault(key, (n, {}))[1][i] = v
    result: dict[Key, Percentiles] = {}
    for key, (n, values) in groups.items():
        out: list[float | None] = []
        for q in QUANTILES:
            first, second, fraction = quantile_positions(q, n)
            out.append(interpolate(values[first], values[second], fraction))
        result[key] = Percentiles.of(out)
    return result


def ranked(src: sa.Subquery) -> sa.Subquery:
    """``src`` with two more columns for Mann–Whitney rank sums of ``v`` within each key group.

    ``r`` is the tie-averaged rank and ``tt`` is t² − 1 for the t values tied with it, so that
    Σ(t³ − t) over tie groups is Σ tt over rows; both are NULL where ``v`` is NULL (such rows stay,
    for other aggregates over the same rows, but are not ranked). Both groups (``grp`` 0 and 1) are
    ranked together: aggregate them per key group and ``grp`` with ``rank_sum_parts`` and join the
    two halves with ``combine_rank_sums``.

    A tie group occupies positions ``rank()`` to ``count(*)`` (the default frame ends at the current
    row's last peer): one window, so one sort and one pass, gives both ends.
    """
    keys = _keys(src)
    has_value = src.c.v.is_not(None)
    window: dict[str, Any] = {"partition_by": [*keys, has_value], "order_by": src.c.v}
    first = sa.cast(sa.func.rank().over(**window), sa.Float)
    last = sa.cast(sa.func.count().over(**window), sa.Float)
    t = last - first + 1.0
    return sa.select(
        *src.c,
        sa.case((has_value, (first + last) / 2.0)).label("r"),
        sa.case((has_value, t * t - 1.0)).label("tt"),
    ).subquery()


def rank_sum_parts(rk: sa.Subquery) -> list[sa.ColumnElement[Any]]:
    """Aggregates over rows of ``ranked``: how many values, the sum of their ranks, the tie term."""
    return [sa.func.count(rk.c.r), sa.func.sum(rk.c.r), sa.func.sum(rk.c.tt)]


def run_shapes_select(conn: sa.Connection, steps_src: sa.Subquery) -> sa.Select[Any]:
    """Rows of (keys…, shape, runs): how many runs have each shape, per key group.

    ``steps_src`` has one row per counted step with ``run_id``, ``seq``, ``step_type`` and keys; the
    shape of a run is its step types in ``seq`` order, joined by SHAPE_SEPARATOR.
    """
    keys = _keys(steps_src)
    shape: sa.ColumnElement[Any]
    if is_postgres(conn):
        shape = sa.func.string_agg(
            steps_src.c.step_type, postgresql.aggregate_order_by(sa.literal(SHAPE_SEPARATOR), steps_src.c.seq)
        )
        per_run = (
            sa.select(*keys, steps_src.c.run_id, shape.label("shape"))
            .group_by(*keys, steps_src.c.run_id)
            .subquery()
        )
    else:
        # group_concat has no ORDER BY as an aggregate before SQLite 3.44; as a window function
        # its order is defined by the window, and the full frame gives every row the whole shape.
        shape = sa.func.group_concat(steps_src.c.step_type, SHAPE_SEPARATOR).over(
            partition_by=steps_src.c.run_id, order_by=steps_src.c.seq, rows=(None, None)
        )
        per_run = sa.select(*keys, steps_src.c.run_id, shape.label("shape")).distinct().subquery()
    pk = _keys(per_run)
    return sa.select(*pk, per_run.c.shape, sa.func.count()).group_by(*pk, per_run.c.shape)
