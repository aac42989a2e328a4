"""The writer's hand-made rows and SQL store and read exactly what SQLAlchemy stores and reads.

``store/sql/write/step_rows.py`` formats step timestamps and metadata itself, and ``store/sql/write/sql.py`` sends
the writer's statements through the DBAPI cursor. Steps are stored once through ``steps.insert()``
(every column type's bind processor) and once through ``write_batch``; runs written by the writer
are read back through SQLAlchemy and stored again through ``runs.insert()``. The rows are then
compared raw — SQLite's stored text and types, PostgreSQL's text form of every column — and must be
identical, byte for byte. The writer's own reads must equal SQLAlchemy's.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.model import time_in_range
from agenttracer.server.ingest.fastpath import _TIMESTAMP
from agenttracer.store.run_state import Incoming
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.tables import runs, steps
from agenttracer.store.sql.write.sql import RUN_ROW_COLUMNS, statements_for
from agenttracer.store.sql.write.step_rows import STEP_ROW_COLUMNS, StepRows, sqlite_text_from_wire, timestamp_binder
from agenttracer.store.sql.write.writer import write_batch
from tests.store.test_writer import incoming, sample_run
from tests.support.events import T0, new_run_id, run_start, step

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
UTC = timezone.utc

TIMES = [
    datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC),
    datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC),  # no microseconds: SQLAlchemy still writes .000000
    datetime(2026, 11, 25, 9, 0, 0, 1, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, 0, tzinfo=UTC),
    datetime(999, 3, 4, 5, 6, 7, 80, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 11, 25, 10, 30, 0, 5, tzinfo=timezone(timedelta(hours=1, minutes=30))),  # converted to UTC
    datetime(2026, 11, 25, 9, 0, 0, 500000, tzinfo=timezone(timedelta(0))),  # UTC, but not the singleton
]

METAS: list[dict[str, Any]] = [
    {},
    {"http_status": 200, "cached": True, "ratio": 0.1, "big": 2**53 - 1, "neg": -1.5e-7},
    {"model": "gpt-4o-mini", "région": "zürich-1", "emoji": "\U0001f600", "quote": 'a"b\\c'},
    {"tiny": 5e-324, "huge": 1.7976931348623157e308, "int_float": 3.0, "zero": -0.0},
]


def step_values(run_id: str, seq: int) -> dict[str, Any]:
    started = TIMES[seq % len(TIMES)]
    return {
        "run_id": run_id,
        "seq": seq,
        "step_type": "tool",
        "name": f"tool_{seq}",
        "status": "error" if seq % 3 == 0 else "ok",
        "started_at": started,
        "ended_at": TIMES[(seq + 1) % len(TIMES)],
        "latency_ms": [0.0, 1.25, 1234.5678, 1e-9][seq % 4],
        "attempt": 1 + seq % 2,
        "retry_of_seq": seq - 1 if seq % 2 else None,
        "parent_seq": None,
        "error_class": "TimeoutError" if seq % 3 == 0 else None,
        "failure_code": "timeout" if seq % 3 == 0 else None,
        "meta": METAS[seq % len(METAS)],
        "meta_removed": seq % 2,
    }


def raw_rows(engine: sa.Engine, run_id: str, table: str = "steps") -> list[tuple[Any, ...]]:
    """The stored rows without any SQLAlchemy result processing (run_id left out)."""
    names = STEP_ROW_COLUMNS if table == "steps" else RUN_ROW_COLUMNS
    columns = [c for c in names if c != "run_id"]
    if engine.dialect.name == "sqlite":
        select = ", ".join(f"typeof({c}), {c}" for c in columns)
    else:
        select = ", ".join(f"{c}::text" for c in columns)
    order = " ORDER BY seq" if table == "steps" else ""
    with engine.connect() as conn:
        result = conn.exec_driver_sql(f"SELECT {select} FROM {table} WHERE run_id = '{run_id}'{order}")
        return [tuple(row) for row in result]


def test_timestamps_format_like_sqlalchemy_on_both_dialects() -> None:
    for url in ("sqlite://", "postgresql+psycopg://"):
        dialect = make_engine(url).dialect if url.startswith("sqlite") else sa.create_engine(url).dialect
        rows = StepRows(dialect)
        process = steps.c.started_at.type.dialect_impl(dialect).bind_processor(dialect)
        assert process is not None
        bind = timestamp_binder(runs.c.ended_at, dialect)  # what the writer binds for runs' timestamps
        for when in TIMES:
            assert rows.timestamp(when) == process(when), (url, when)
            assert bind(when) == process(when), (url, when)
        assert bind(None) is None


def test_naive_timestamps_are_refused_as_sqlalchemy_refuses_them() -> None:
    dialect = make_engine("sqlite://").dialect
    rows = StepRows(dialect)
    with pytest.raises(ValueError, match="naive"):
        rows.timestamp(datetime(2026, 11, 25, 9, 0))
    with pytest.raises(ValueError, match="naive"):
        timestamp_binder(runs.c.started_at, dialect)(datetime(2026, 11, 25, 9, 0))


def test_stored_steps_are_byte_identical_to_sqlalchemys_insert(engine: sa.Engine) -> None:
    by_sqlalchemy, by_writer = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    seqs = range(1, 25)
    with engine.begin() as conn:
        conn.execute(runs.insert().values(run_id=by_sqlalchemy, status="running", ingested_at=NOW, updated_at=NOW))
        conn.execute(steps.insert(), [step_values(by_sqlalchemy, seq) for seq in seqs])
    events = [
        Incoming(i, "step", by_writer, TIMES[0], step_values(by_writer, seq), 0) for i, seq in enumerate(seqs)
    ]
    assert {o.status for o in write_batch(engine, events, now=NOW)} == {"accepted"}

    expected = raw_rows(engine, by_sqlalchemy)
    assert len(expected) == len(seqs)
    assert raw_rows(engine, by_writer) == expected


def test_runs_the_writer_stores_are_what_sqlalchemy_would_store(engine: sa.Engine) -> None:
    written = [new_run_id() for _ in range(3)]
    events = [
        *sample_run(written[0]),
        # Only steps: a placeholder run (no identity, no end) with counters.
        step(written[1], 2, started_at="2026-11-25T09:00:00Z", ended_at="2026-11-25T09:00:00.5Z"),
        run_start(written[2], started_at="2026-11-25T09:00:00.000001Z", metadata={"région": "zürich", "n": 2.5}),
    ]
    write_batch(engine, incoming(events), now=NOW)
    for run_id in written:
        with engine.begin() as conn:
            row = dict(conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().one())
            copy = new_run_id()
            conn.execute(runs.insert().values({**row, "run_id": copy}))
        assert raw_rows(engine, copy, "runs") == raw_rows(engine, run_id, "runs")


def test_the_writers_reads_of_runs_equal_sqlalchemys(engine: sa.Engine) -> None:
    run_ids = sorted(new_run_id() for _ in range(2))
    write_batch(engine, incoming([*sample_run(run_ids[0]), step(run_ids[1], 1)]), now=NOW)
    with engine.begin() as conn:
        expected = [dict(r) for r in conn.execute(sa.select(runs).order_by(runs.c.run_id)).mappings()]
        got = statements_for(engine.dialect).load_runs(conn, run_ids)
    assert [{k: (type(v), v) for k, v in r.items()} for r in got] == [
        {k: (type(v), v) for k, v in r.items()} for r in expected
    ]
    assert all(r["started_at"].tzinfo is timezone.utc for r in got)


def _stored_steps_that_look_new(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, list[dict[str, Any]], type]:
    """A run with two stored steps, and a writer whose locked read no longer sees them: PostgreSQL's COPY
    straight into steps then hits the primary key, and the writer must redo the batch through
    ON CONFLICT DO NOTHING. Returns the run id, the stored steps' events and the statements' class."""
    rid = new_run_id()
    events = [step(rid, 1), step(rid, 2)]
    write_batch(engine, incoming(events), now=NOW)
    sql = type(statements_for(engine.dialect))
    monkeypatch.setattr(sql, "stored_steps", lambda self, conn, run_ids: set())
    return rid, events, sql


def test_a_step_that_collides_after_all_is_stored_once_and_the_batch_goes_through(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid, events, _ = _stored_steps_that_look_new(engine, monkeypatch)
    outcomes = write_batch(engine, incoming([*events, step(rid, 3)]), now=NOW)
    assert [o.status for o in outcomes] == ["accepted"] * 3  # what the writer believed
    with engine.connect() as conn:
        row = conn.execute(sa.select(runs.c.step_count).where(runs.c.run_id == rid)).one()
        stored = conn.execute(sa.select(sa.func.count()).select_from(steps).where(steps.c.run_id == rid)).scalar()
    assert (row.step_count, stored) == (3, 3)


def test_driver_errors_of_the_raw_statements_reach_callers_as_sqlalchemy_errors(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    dbapi = engine.dialect.loaded_dbapi

    def broken(self: Any, conn: Any, run_ids: list[str]) -> Any:
        raise dbapi.OperationalError("the database went away")

    monkeypatch.setattr(type(statements_for(engine.dialect)), "load_runs", broken)
    with pytest.raises(sa.exc.OperationalError):
        write_batch(engine, incoming([step(new_run_id(), 1)]), now=NOW)


def wire_stamps() -> list[str]:
    """UTC timestamps in every spelling the server's fast path accepts: 0-6 fraction digits, Z or
    +00:00, edge dates."""
    rng = random.Random(5)
    out = []
    moments = [t.astimezone(UTC) for t in TIMES]
    moments += [T0 + timedelta(seconds=rng.uniform(-1e9, 1e9)) for _ in range(200)]
    for when in moments:
        base = when.replace(microsecond=0, tzinfo=None).isoformat()
        digits = f"{when.microsecond:06d}"
        for width in range(7):
            fraction = "." + digits[:width] if width else ""
            out += [f"{base}{fraction}Z", f"{base}{fraction}+00:00"]
    return out


def test_sqlite_text_from_the_wire_equals_formatting_the_parsed_datetime() -> None:
    rows = StepRows(make_engine("sqlite://").dialect)
    stamps = wire_stamps()
    for text in stamps:
        assert _TIMESTAMP.fullmatch(text), text
        assert sqlite_text_from_wire(text) == rows.timestamp(datetime.fromisoformat(text)), text


def test_steps_from_the_fast_path_are_byte_identical_to_sqlalchemys_insert(engine: sa.Engine) -> None:
    by_sqlalchemy, by_writer = new_run_id(), new_run_id()
    # Only the spellings of times the input rules accept (model.py: 1970 to a day past the clock).
    accepted = [t for t in wire_stamps() if time_in_range(datetime.fromisoformat(t.replace("Z", "+00:00")), NOW)]
    stamps = accepted[::7][:60]
    events = [step(by_writer, seq, started_at=text, ended_at=text) for seq, text in enumerate(stamps, 1)]
    items = incoming(events)
    # They took the fast path, which hands the writer the request's own text.
    assert all((item.wire_started, item.wire_ended) == (text, text) for item, text in zip(items, stamps, strict=True))
    assert {o.status for o in write_batch(engine, items, now=NOW)} == {"accepted"}
    with engine.begin() as conn:
        conn.execute(runs.insert().values(run_id=by_sqlalchemy, status="running", ingested_at=NOW, updated_at=NOW))
        conn.execute(steps.insert(), [{**item.values, "run_id": by_sqlalchemy} for item in items])
    expected = raw_rows(engine, by_sqlalchemy)
    assert len(expected) == len(stamps)
    assert raw_rows(engine, by_writer) == expected


@pytest.mark.parametrize("backend", ["postgresql"])  # sqlstates (deadlock, unique violation) are PostgreSQL's
def test_a_collision_after_the_deadlock_retries_still_gets_its_conflict_proof_attempt(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg  # the PostgreSQL driver: only this test needs it

    rid, events, sql = _stored_steps_that_look_new(engine, monkeypatch)
    real_load_runs = sql.load_runs
    deadlocks = iter(range(2))  # the first two attempts lose a deadlock; the third hits the primary key

    def load_runs(self: Any, conn: Any, run_ids: list[str]) -> Any:
        if next(deadlocks, None) is not None:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return real_load_runs(self, conn, run_ids)

    monkeypatch.setattr(sql, "load_runs", load_runs)
    outcomes = write_batch(engine, incoming([*events, step(rid, 3)]), now=NOW)
    assert len(outcomes) == 3
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(steps).where(steps.c.run_id == rid)).scalar()
    assert stored == 3
