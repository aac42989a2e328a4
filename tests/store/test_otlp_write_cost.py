"""A request's cost is bounded by the request, not by the stored trace: a span that starts before
every stored step of a large trace is numbered after them and reads and writes the same few rows
whatever the trace's size (issue: one early span used to rewrite every stored step)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from agenttracer.store.sql.schema.tables import runs, steps
from agenttracer.store.sql.write.otlp_write import write_spans
from tests.support.spans import NOW, span


@contextmanager
def statements(engine: sa.Engine) -> Iterator[list[tuple[str, int]]]:
    seen: list[tuple[str, int]] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append((statement.split()[0].upper(), cursor.rowcount))

    sa.event.listen(engine, "after_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "after_cursor_execute", record)


def late_early_span(engine: sa.Engine, size: int) -> list[tuple[str, int]]:
    run_id = f"00000000-0000-0000-0000-{size:012d}"
    stored = [span(run_id, i, 10 * i, error=i % 7 == 0) for i in range(2, size + 2)]
    for start in range(0, len(stored), 1000):
        write_spans(engine, stored[start:start + 1000], NOW)
    with statements(engine) as seen:
        written = write_spans(engine, [span(run_id, size + 10, 0, error=True)], NOW)  # starts first of all
    assert written.accepted == 1
    with engine.connect() as conn:
        count, seq = conn.execute(sa.select(runs.c.step_count, sa.func.max(steps.c.seq))
                                  .join(steps, steps.c.run_id == runs.c.run_id)
                                  .where(runs.c.run_id == run_id).group_by(runs.c.step_count)).one()
        first = conn.execute(sa.select(steps.c.seq, steps.c.retry_of_seq, steps.c.attempt)
                             .where(steps.c.run_id == run_id, steps.c.span_id == f"{2:016x}")).one()
    assert (count, seq) == (size + 1, size + 1)  # stored seqs kept; the new span took the next one
    assert tuple(first) == (1, size + 1, 2)  # the stored step after it became its retry
    return seen


def test_one_early_span_costs_the_same_against_a_small_and_a_large_stored_trace(engine: sa.Engine) -> None:
    small = late_early_span(engine, 50)
    large = late_early_span(engine, 3000)
    assert [kind for kind, _ in large] == [kind for kind, _ in small]
    assert "DELETE" not in {kind for kind, _ in large}
    # Rows written: the new step's run row, the stored step it relinked; never the stored trace.
    assert sum(max(rows, 0) for kind, rows in large if kind == "UPDATE") <= 4, large
    assert len(large) <= 20, large
