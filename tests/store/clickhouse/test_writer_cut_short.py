"""A write cut short between its two inserts (steps stored, the run row not): the client's retry finds
the steps as duplicates and stores each once, whether or not the run had a row before."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.store import ClickHouseStore
from agenttracer.store.clickhouse.write import commit
from tests.support.events import full_run, new_run_id, run_start, step
from tests.support.incoming import incoming
from tests.support.stored import step_copies

NOW = datetime.now(timezone.utc)


def _cut_before_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    insert = commit._insert

    def steps_only(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
        if table == "runs":
            raise ConnectionError("the process died between the two inserts")
        insert(conn, table, columns, rows)

    monkeypatch.setattr(commit, "_insert", steps_only)


@pytest.mark.parametrize("first_write", [True, False], ids=["new run", "stored run"])
def test_a_retry_after_a_write_cut_short_stores_each_step_once(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch, first_write: bool
) -> None:
    run_id = new_run_id()
    if not first_write:
        store.write_batch(incoming([run_start(run_id)], NOW), now=NOW)
    batch = incoming(full_run(run_id) if first_write else [step(run_id, i) for i in (1, 2, 3)], NOW)
    with monkeypatch.context() as patched:
        _cut_before_runs(patched)
        with pytest.raises(ConnectionError):
            store.write_batch(batch, now=NOW)
    outcomes = store.write_batch(batch, now=NOW)
    steps = [o.status for o, item in zip(outcomes, batch, strict=True) if item.kind == "step"]
    assert steps == ["duplicate"] * 3
    assert sorted(copies for rid, _, copies in step_copies(store) if rid == run_id) == [1, 1, 1]
