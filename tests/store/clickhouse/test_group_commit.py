"""Group commit (store/clickhouse/write/commit.py): writes that arrive while an insert runs go into the
next one together, each returns only once its rows are stored, steps go in before runs, and a write the
database refuses fails alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from agenttracer import model
from agenttracer.store.clickhouse.connection import ClickHouseError, Connection, Params, Result, Settings, connect
from agenttracer.store.clickhouse.write import commit
from agenttracer.store.clickhouse.write.rows import next_version, run_values, step_values

NOW = datetime.now(timezone.utc)


class Gated:
    """A real connection whose first insert waits until the test opens the gate; it notes each insert."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.url, self.database = conn.url, conn.database
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.inserts: list[tuple[str, int]] = []

    def command(self, sql: str, params: Params = None, settings: Settings = None) -> None:
        self.conn.command(sql, params, settings)

    def query(self, sql: str, params: Params = None, settings: Settings = None) -> Result:
        return self.conn.query(sql, params, settings)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
               token: str | None = None, settings: Settings = None) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(30)
        self.inserts.append((table, len(rows)))
        self.conn.insert(table, columns, rows, token=token, settings=settings)

    def close(self) -> None:
        self.conn.close()


def rows(run_id: str, *, name: str = "search") -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    version = next_version()
    step = step_values("default", ("a", "v", "e"), {
        "run_id": run_id, "seq": 1, "step_type": "tool", "name": name, "status": "ok", "started_at": NOW,
        "ended_at": NOW + timedelta(milliseconds=5), "latency_ms": 5.0}, version)
    run = run_values({
        "run_id": run_id, "project": "default", "agent_id": "a", "agent_version": "v", "environment": "e",
        "status": "running", "started_at": NOW, "ended_at": None, "step_count": 1, "error_step_count": 0,
        "retry_count": 0, "failure_type": None, "failure_code": None, "failure_step_seq": None,
        "failure_message": None, "failure_recorded_at": None, "meta": {}, "meta_removed": 0, "ingested_at": NOW,
        "root_span_id": None, "root_error": None, "source": "sdk", "abandoned": False}, version, NOW)  # fmt: skip
    return [step], [run]


def stored_runs(conn: Connection) -> set[str]:
    found = conn.query("SELECT DISTINCT run_id FROM steps INNER JOIN runs USING (run_id)").rows
    return {row[0] for row in found}


def write_all(gated: Gated, writes: dict[str, tuple[list[Any], list[Any]]]) -> dict[str, BaseException | None]:
    """The first write leads a round held at the gate; the others queue behind it; then the gate opens."""
    errors: dict[str, BaseException | None] = {}

    def write(run_id: str) -> None:
        try:
            commit.insert(gated, *writes[run_id])
            errors[run_id] = None
        except ClickHouseError as exc:
            errors[run_id] = exc

    first, *others = writes
    threads = [threading.Thread(target=write, args=(first,))]
    threads[0].start()
    assert gated.entered.wait(30)
    threads += [threading.Thread(target=write, args=(run_id,)) for run_id in others]
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 30
    while len(commit._group(gated).queued) < len(others) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(thread.is_alive() for thread in threads[1:])  # all waiting for their rows
    gated.gate.set()
    for thread in threads:
        thread.join(30)
    return errors


def test_writes_that_wait_together_go_in_one_insert_per_table(chdb_url: str) -> None:
    conn = connect(chdb_url)
    gated = Gated(conn)
    try:
        writes = {f"00000000-0000-0000-0000-00000000000{i}": rows(f"00000000-0000-0000-0000-00000000000{i}")
                  for i in range(4)}
        errors = write_all(gated, writes)
        assert errors == dict.fromkeys(writes)
        assert stored_runs(conn) == set(writes)
        # The first write's round alone, then the three that queued behind it in one round.
        assert gated.inserts == [("steps", 1), ("runs", 1), ("steps", 3), ("runs", 3)]
    finally:
        conn.close()


@pytest.mark.slow
def test_a_write_the_database_refuses_fails_alone(chdb_url: str) -> None:
    conn = connect(chdb_url)
    gated = Gated(conn)
    try:
        ids = [f"00000000-0000-0000-0000-00000000001{i}" for i in range(3)]
        writes = {ids[0]: rows(ids[0]), ids[1]: rows(ids[1], name="x" * (model.MAX_NAME_LEN + 1)),
                  ids[2]: rows(ids[2])}
        errors = write_all(gated, writes)
        assert errors[ids[0]] is None and errors[ids[2]] is None
        assert isinstance(errors[ids[1]], ClickHouseError)
        assert stored_runs(conn) == {ids[0], ids[2]}
    finally:
        conn.close()


def test_a_round_waits_for_the_writes_announced_before_it(chdb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit, "LINGER_S", 30.0)  # longer than the test: only the announced write ends the wait
    conn = connect(chdb_url)
    gated = Gated(conn)
    gated.gate.set()
    ids = [f"00000000-0000-0000-0000-00000000002{i}" for i in range(2)]
    try:
        with commit.coming(gated) as second:  # announced: still reading what it will write
            leader = threading.Thread(target=lambda: commit.insert(gated, *rows(ids[0])))
            leader.start()
            deadline = time.monotonic() + 30
            while not commit._group(gated).busy and time.monotonic() < deadline:
                time.sleep(0.01)
            assert commit._group(gated).busy and not gated.inserts  # the leader waits for the second write
            commit.insert(gated, *rows(ids[1]), second)
        leader.join(30)
        assert gated.inserts == [("steps", 2), ("runs", 2)]
        assert stored_runs(conn) == set(ids)
    finally:
        conn.close()


def test_an_announced_write_that_stores_nothing_ends_the_wait(chdb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit, "LINGER_S", 30.0)
    conn = connect(chdb_url)
    gated = Gated(conn)
    gated.gate.set()
    run_id = "00000000-0000-0000-0000-000000000030"
    try:
        with commit.coming(gated):  # e.g. its read failed: it leaves without inserting
            leader = threading.Thread(target=lambda: commit.insert(gated, *rows(run_id)))
            leader.start()
            deadline = time.monotonic() + 30
            while not commit._group(gated).busy and time.monotonic() < deadline:
                time.sleep(0.01)
            assert commit._group(gated).busy and not gated.inserts
        leader.join(30)
        assert not leader.is_alive()
        assert gated.inserts == [("steps", 1), ("runs", 1)]
        assert commit._group(gated).coming == 0
    finally:
        conn.close()


def test_a_leader_interrupted_while_it_waits_fails_alone_and_frees_the_group(
    chdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commit, "LINGER_S", 30.0)
    conn = connect(chdb_url)
    gated = Gated(conn)
    gated.gate.set()
    ids = [f"00000000-0000-0000-0000-00000000004{i}" for i in range(2)]
    group = commit._group(gated)
    real_wait = group.cond.wait

    def interrupted(timeout: float | None = None) -> bool:
        group.cond.wait = real_wait  # type: ignore[method-assign]  # once
        raise KeyboardInterrupt

    try:
        with commit.coming(gated):  # an announced write keeps the leader waiting
            group.cond.wait = interrupted  # type: ignore[method-assign]
            with pytest.raises(KeyboardInterrupt):
                commit.insert(gated, *rows(ids[0]))
            assert not group.busy and not group.queued
        # The next write leads its own round at once, and only its rows are stored.
        after = threading.Thread(target=lambda: commit.insert(gated, *rows(ids[1])))
        after.start()
        after.join(30)
        assert not after.is_alive()
        assert gated.inserts == [("steps", 1), ("runs", 1)]
        assert stored_runs(conn) == {ids[1]}
    finally:
        conn.close()
