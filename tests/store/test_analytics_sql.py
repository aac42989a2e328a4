"""The SQL building blocks of store/sql/read/sql.py against their Python definitions, on both databases."""

from __future__ import annotations

import random

import sqlalchemy as sa

from agenttracer.store.sql.read.sql import one_of, rank_sum_parts, ranked, tune
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.tables import runs
from agenttracer.store.stats_math import combine_rank_sums, rank_sums
from tests.support.rundata import T0, RunSpec, insert_runs


def _rows_source(rows: list[tuple[str, int, float | None]]) -> sa.Subquery:
    """(k0, grp, v) rows as a literal subquery, without any table."""
    selects = [
        sa.select(
            sa.literal(k, sa.String()).label("k0"),
            sa.literal(g, sa.Integer()).label("grp"),
            sa.cast(sa.literal(v, sa.Float()) if v is not None else sa.null(), sa.Float()).label("v"),
        )
        for k, g, v in rows
    ]
    return sa.union_all(*selects).subquery()


def test_ranked_rank_sums_equal_the_python_definition(empty_db_url: str) -> None:
    rng = random.Random(7)
    rows: list[tuple[str, int, float | None]] = []
    # Ties within and across the groups, NULLs (never ranked), a key with one side only.
    for _ in range(60):
        rows.append(("tool", rng.randint(0, 1), float(rng.randint(1, 12))))
    rows += [("tool", 0, None), ("tool", 1, None), ("llm", 0, 2.5), ("llm", 0, 2.5), ("llm", 0, None)]
    rows += [("plan", 1, 0.25 * i) for i in range(5)] + [("plan", 0, 0.5), ("plan", 0, 9.0)]
    engine = make_engine(empty_db_url)
    try:
        rk = ranked(_rows_source(rows))
        stmt = sa.select(rk.c.k0, rk.c.grp, *rank_sum_parts(rk)).group_by(rk.c.k0, rk.c.grp)
        with engine.connect() as conn:
            parts = {(k, int(g)): tuple(rest) for k, g, *rest in conn.execute(stmt)}
    finally:
        engine.dispose()
    for key in ("tool", "llm", "plan"):
        got = combine_rank_sums(parts.get((key, 0)), parts.get((key, 1)))
        a = [v for k, g, v in rows if k == key and g == 0 and v is not None]
        b = [v for k, g, v in rows if k == key and g == 1 and v is not None]
        assert got == rank_sums(a, b), key
    assert combine_rank_sums(parts.get(("llm", 0)), parts.get(("llm", 1))).tie_term == 6.0  # one pair: 2³ − 2


def test_combine_rank_sums_of_nothing_is_empty() -> None:
    sums = combine_rank_sums(None, None)
    assert (sums.n_a, sums.n_b, sums.rank_sum_a, sums.tie_term) == (0, 0, 0.0, 0.0)


def test_one_of_matches_exactly_the_given_values(empty_db_url: str) -> None:
    names = ["run-1", "run,2", 'run "3"', "run\\4", "run\x1f5", "", "run-6"]
    src = sa.union_all(*[sa.select(sa.literal(n, sa.String()).label("x")) for n in names]).subquery()
    engine = make_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            for wanted in (["run-1", "run,2", 'run "3"', "run\\4"], ["run\x1f5", "run-6"], ["", "nope"], [""], []):
                found = sorted(r[0] for r in conn.execute(sa.select(src.c.x).where(one_of(conn, src.c.x, wanted))))
                assert found == sorted(n for n in names if n in wanted), wanted
    finally:
        engine.dispose()


def test_tune_makes_an_analytics_connection_read_one_snapshot(engine: sa.Engine) -> None:
    """A stats answer is several statements; a batch committed between two of them must not be counted
    by one and missed by another, so after ``tune`` the connection keeps the snapshot of its first read."""
    count = sa.select(sa.func.count()).select_from(runs)
    insert_runs(engine, [RunSpec("a", "1", "production", T0, "success")])
    with engine.connect() as reader:
        tune(reader)
        assert reader.execute(count).scalar_one() == 1
        # A writer commits while the answer is being computed: not blocked, and not seen.
        insert_runs(engine, [RunSpec("a", "1", "production", T0, "success")])
        assert reader.execute(count).scalar_one() == 1
    with engine.connect() as fresh:
        assert fresh.execute(count).scalar_one() == 2
    # The isolation level was for that one connection: the pool hands out plain ones again.
    with engine.connect() as again:
        tune(again)
        assert again.execute(count).scalar_one() == 2
