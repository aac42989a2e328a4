"""Where ``GET /v1/stats`` spends its time: each SQL statement it runs, timed, with its plan.

    python -m benchlib.explain_stats --url 'postgresql://…/at_bench?options=-csearch_path%3Dds_1000000' --days 1

Runs ``store.read.stats.run_stats`` once on the loaded data set while recording every statement
(SQLAlchemy's ``before_cursor_execute``), then repeats each one under ``EXPLAIN (ANALYZE, BUFFERS)``
and prints its execution time and the top of its plan. PostgreSQL only. ``record`` and ``explain``
are shared with the other ``explain_*`` tools.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from agenttracer.store.filters import RunFilters
from agenttracer.store.sql.read.stats import run_stats
from agenttracer.store.sql.schema.engine import make_engine

Recorded = list[tuple[str, Any, float]]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True)
    parser.add_argument("--days", type=float, default=1.0, help="window ending at the data set's end")
    parser.add_argument("--end", default="2026-11-25T00:00:00+00:00")
    parser.add_argument("--plan-lines", type=int, default=12)
    parser.add_argument("--set", action="append", default=[], help="e.g. jit=off: applied to the session first")


def record(engine: sa.Engine, settings: list[str], work: Callable[[sa.Connection], object]) -> tuple[Recorded, float]:
    """Run ``work`` on one connection, recording each statement with its wall time; returns (them, total s)."""
    recorded: Recorded = []
    started: dict[int, float] = {}

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        started[id(cursor)] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        recorded.append((statement, params, time.perf_counter() - started.pop(id(cursor), time.perf_counter())))

    if settings:
        @sa.event.listens_for(engine, "connect")
        def _settings(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                for setting in settings:
                    name, _, value = setting.partition("=")
                    cur.execute(f"SET {name} = {value}")
            dbapi_conn.commit()

    t0 = time.perf_counter()
    with engine.connect() as conn:
        work(conn)
    total = time.perf_counter() - t0
    sa.event.remove(engine, "before_cursor_execute", _before)
    sa.event.remove(engine, "after_cursor_execute", _after)
    return recorded, total


def explain(engine: sa.Engine, recorded: Recorded, plan_lines: int) -> None:
    """Repeat each recorded statement under EXPLAIN (ANALYZE, BUFFERS) and print the top of its plan."""
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        for i, (statement, params, took) in enumerate(recorded, 1):
            print(f"\n--- statement {i}: {took * 1000:,.0f} ms  {' '.join(statement.split())[:160]}")
            with raw.cursor() as cur:  # type: ignore[union-attr]
                if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                    cur.execute(statement, params)  # settings the analytics transaction makes
                    continue
                cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
                lines = [r[0] for r in cur.fetchall()]
            for line in lines[:plan_lines]:
                print(f"    {line}")
            for line in lines[-2:]:
                print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    args = parser.parse_args()
    end = datetime.fromisoformat(args.end).astimezone(timezone.utc)
    filters = RunFilters(since=end - timedelta(days=args.days), until=end)
    engine = make_engine(args.url, readonly=True)
    recorded, total = record(engine, args.set, lambda conn: run_stats(conn, filters, now=end))
    print(f"run_stats over {args.days:g} day(s): {total * 1000:,.0f} ms in {len(recorded)} statements")
    explain(engine, recorded, args.plan_lines)
    engine.dispose()


if __name__ == "__main__":
    main()
