"""On ClickHouse too, an OTLP request's cost is bounded by the request, not by the stored trace: a span
that starts before every stored step of a large trace makes the same statements, gets the same rows
back and writes the same rows whatever the trace's size (the SQL store's test is
tests/store/test_otlp_write_cost.py; this one counts at the ClickHouse connection)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from agenttracer.store.clickhouse.connection import Connection, Params, Result, Settings, connect
from agenttracer.store.clickhouse.write.otlp_write import write_spans
from agenttracer.store.otlp_assemble import NEIGHBOUR_ROWS
from tests.support.spans import NOW, span


@dataclass(eq=False)
class Counting:
    """A real connection that notes, per statement, the rows it returned or inserted."""

    conn: Connection
    seen: list[tuple[str, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.conn.url

    @property
    def database(self) -> str:
        return self.conn.database

    def command(self, sql: str, params: Params = None, settings: Settings = None) -> None:
        self.seen.append(("COMMAND", 0))
        self.conn.command(sql, params, settings)

    def query(self, sql: str, params: Params = None, settings: Settings = None) -> Result:
        result = self.conn.query(sql, params, settings)
        self.seen.append(("SELECT", len(result.rows)))
        return result

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
               token: str | None = None, settings: Settings = None) -> None:
        self.seen.append((f"INSERT {table}", len(rows)))
        self.conn.insert(table, columns, rows, token=token, settings=settings)

    def close(self) -> None:
        self.conn.close()


def late_early_span(conn: Connection, size: int) -> list[tuple[str, int]]:
    run_id = f"00000000-0000-0000-0000-{size:012d}"
    # The same few error steps in both traces: what differs is only how many steps were stored.
    stored = [span(run_id, i, 10 * i, error=i % 7 == 0 and i < 50) for i in range(2, size + 2)]
    for start in range(0, len(stored), 1000):
        write_spans(conn, stored[start:start + 1000], NOW)
    counting = Counting(conn)
    written = write_spans(counting, [span(run_id, size + 10, 0, error=True)], NOW)  # starts first of all
    assert written.accepted == 1
    run = conn.query(
        "SELECT step_count, error_step_count, retry_count FROM runs WHERE run_id = {r:String}"
        " ORDER BY version DESC LIMIT 1", {"r": run_id}).rows
    first = conn.query(
        "SELECT seq, retry_of_seq, attempt FROM steps WHERE run_id = {r:String} AND span_id = {s:String}"
        " ORDER BY version DESC LIMIT 1", {"r": run_id, "s": f"{2:016x}"}).rows
    top = conn.query("SELECT max(seq) FROM steps WHERE run_id = {r:String}", {"r": run_id}).rows
    recount = conn.query(
        "SELECT count(), countIf(status = 'error'), countIf(attempt > 1) FROM (SELECT status, attempt FROM steps"
        " WHERE run_id = {r:String} ORDER BY version DESC LIMIT 1 BY seq)", {"r": run_id}).rows
    assert run == recount  # counters moved by what the request added and relinked: as a recount says
    assert run[0][:2] == (size + 1, sum(s.error for s in stored) + 1)
    assert top == [(size + 1,)]  # stored seqs kept; the new span took the next one
    assert first == [(1, size + 1, 2)]  # the stored step after it became its retry
    return counting.seen


@pytest.mark.slow
def test_one_early_span_costs_the_same_against_a_small_and_a_large_stored_trace(chdb_url: str) -> None:
    conn = connect(chdb_url)
    try:
        small = late_early_span(conn, 100)  # more than NEIGHBOUR_ROWS
        large = late_early_span(conn, 3000)
    finally:
        conn.close()
    assert large == small  # the same statements, each returning or writing as many rows
    # Rows back: at most the neighbours of the new attempt in any one statement, never the trace.
    assert max(rows for kind, rows in large if kind == "SELECT") <= NEIGHBOUR_ROWS, large
    # Rows written: the new step and the stored step it relinked, then the run's new version and a
    # tombstone for its old one (the run now starts earlier: its sorting key moved).
    assert [(kind, rows) for kind, rows in large if kind.startswith("INSERT")] == [
        ("INSERT steps", 2), ("INSERT runs", 2)]
