"""store/sql/read/runs.py on SQLite and PostgreSQL, through the same read-only engine the Query API uses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta, timezone

import pytest
import sqlalchemy as sa

from agenttracer.store import cursors
from agenttracer.store.filters import RunFilters
from agenttracer.store.sql.read import runs as reader
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.tables import runs
from tests.support.rundata import T0, RunSpec, StepSpec, insert_runs


@pytest.fixture
def ro(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url, readonly=True)
    yield eng
    eng.dispose()


def _walk(ro: sa.Engine, filters: RunFilters, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    with ro.connect() as conn:
        while True:
            items, nxt = reader.list_runs(conn, filters, limit=limit, cursor=cursor)
            assert len(items) <= limit
            seen += [i["run_id"] for i in items]
            if nxt is None:
                return seen
            # Round-trip through the opaque form, as a client would.
            cursor = cursors.decode_cursor(cursors.encode_cursor(nxt, filters, KEY), filters, KEY)


def _insert_undated(engine: sa.Engine, run_id: str) -> None:
    # What a step arriving before its run_start leaves behind: a run with no identity or start yet.
    now = T0
    with engine.begin() as conn:
        conn.execute(runs.insert().values(run_id=run_id, status="running", meta={}, ingested_at=now, updated_at=now))


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_walk_covers_dated_runs_newest_first_then_undated_ones(
    engine: sa.Engine, ro: sa.Engine, limit: int
) -> None:
    specs = [RunSpec("a", "v1", "prod", T0 + timedelta(minutes=i % 3), "success") for i in range(7)]
    insert_runs(engine, specs)
    undated = sorted((str(uuid.uuid4()) for _ in range(3)), reverse=True)
    for run_id in undated:
        _insert_undated(engine, run_id)
    expected = [s.run_id for s in sorted(specs, key=lambda s: (s.started_at, s.run_id), reverse=True)] + undated
    assert _walk(ro, RunFilters(), limit) == expected


def test_time_filters_leave_out_runs_whose_start_is_unknown(engine: sa.Engine, ro: sa.Engine) -> None:
    spec = RunSpec("a", "v1", "prod", T0, "success")
    insert_runs(engine, [spec])
    _insert_undated(engine, str(uuid.uuid4()))
    assert _walk(ro, RunFilters(since=T0 - timedelta(days=1)), 10) == [spec.run_id]
    assert len(_walk(ro, RunFilters(), 10)) == 2


def test_timestamps_come_back_as_aware_utc(engine: sa.Engine, ro: sa.Engine) -> None:
    spec = RunSpec("a", "v1", "prod", T0 + timedelta(microseconds=123456), "success",
                   [StepSpec(1, "tool", "t", 1.5, 2.25)])
    insert_runs(engine, [spec])
    with ro.connect() as conn:
        detail = reader.get_run(conn, spec.run_id, steps_limit=100)
    assert detail is not None
    assert detail["run"]["started_at"] == spec.started_at
    assert detail["run"]["started_at"].tzinfo == timezone.utc
    assert detail["steps"][0]["started_at"] == spec.started_at + timedelta(milliseconds=1.5)
    assert detail["steps"][0]["latency_ms"] == 2.25


def test_get_run_orders_steps_by_seq_whatever_the_insert_order(engine: sa.Engine, ro: sa.Engine) -> None:
    spec = RunSpec("a", "v1", "prod", T0, "success",
                   [StepSpec(seq, "tool", f"s{seq}", seq * 10.0) for seq in (3, 1, 4, 2)])
    insert_runs(engine, [spec])
    with ro.connect() as conn:
        detail = reader.get_run(conn, spec.run_id, steps_limit=100)
        assert reader.get_run(conn, str(uuid.uuid4()), steps_limit=100) is None
    assert detail is not None
    assert [s["seq"] for s in detail["steps"]] == [1, 2, 3, 4]
    assert detail["failure"] is None


def test_list_agents_ignores_runs_without_identity(engine: sa.Engine, ro: sa.Engine) -> None:
    insert_runs(engine, [RunSpec("a", "v1", "prod", T0, "success"), RunSpec("a", "v2", "dev", T0, "success")])
    _insert_undated(engine, str(uuid.uuid4()))
    with ro.connect() as conn:
        agents = reader.list_agents(conn)
    assert [a["agent_id"] for a in agents] == ["a"]
    assert agents[0]["run_count"] == 2
    assert agents[0]["last_seen"] == T0
    assert sorted(v["agent_version"] for v in agents[0]["versions"]) == ["v1", "v2"]


KEY = b"cursor-test-key"


def _forge(payload: object) -> str:
    """A cursor as someone without the server's key would build it: the old unsealed form."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _sealed_raw(body: bytes, key: bytes = KEY) -> str:
    """A token sealed with ``key`` around any bytes (what only a holder of the key could make)."""
    tag = hmac.new(key, body, hashlib.sha256).digest()[:16]
    b64 = base64.urlsafe_b64encode
    return f"{b64(body).decode().rstrip('=')}.{b64(tag).decode().rstrip('=')}"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "%%%",
        ".",
        "bm90IGpzb24",  # "not json"
        _forge({"t": None, "r": "x", "f": "x"}),  # unsealed
        _forge({"t": "0001-01-01T00:00:00+01:00", "r": "x", "f": "x"}) + ".AAAAAAAAAAAAAAAAAAAAAA",
        _sealed_raw(b"not json"),
        _sealed_raw(b"[1, 2]"),
        _sealed_raw(b'{"t": null}'),
        _sealed_raw(b'{"t": "yesterday", "r": "x", "f": "x"}'),
        _sealed_raw(b'{"t": "2026-11-20T12:00:00", "r": "x", "f": "x"}'),  # naive time
        _sealed_raw(b'{"t": null, "r": 5, "f": "x"}'),
        _sealed_raw(b'{"t": null, "r": "a\\u0000b", "f": "x"}'),  # NUL in the run id
        _sealed_raw(b'{"t": null, "r": "x", "f": "x"}', key=b"another-server"),
        "\u00e9" * 10,
        "A" * 600,
    ],
)
def test_malformed_cursors_are_refused_with_a_reason(token: str) -> None:
    with pytest.raises(cursors.CursorError, match="cursor"):
        cursors.decode_cursor(token, RunFilters(), KEY)


def test_a_cursor_is_bound_to_its_filters() -> None:
    cursor = cursors.Cursor(T0, "abc")
    token = cursors.encode_cursor(cursor, RunFilters(agent_id="a"), KEY)
    assert cursors.decode_cursor(token, RunFilters(agent_id="a"), KEY) == cursor
    with pytest.raises(cursors.CursorError, match="different filters"):
        cursors.decode_cursor(token, RunFilters(agent_id="b"), KEY)


def test_an_edited_cursor_is_refused() -> None:
    token = cursors.encode_cursor(cursors.Cursor(T0, "abc"), RunFilters(), KEY)
    body, _, tag = token.partition(".")
    # Any change of the payload, e.g. an earlier time, breaks the seal.
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["t"] = "0001-01-01T00:00:00+00:00"
    edited = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=") + "." + tag
    with pytest.raises(cursors.CursorError, match="not one this server issued"):
        cursors.decode_cursor(edited, RunFilters(), KEY)
    with pytest.raises(cursors.CursorError, match="not one this server issued"):
        cursors.decode_cursor(token, RunFilters(), b"another key")


def test_ping_works_on_the_read_only_engine(ro: sa.Engine) -> None:
    with ro.connect() as conn:
        reader.ping(conn)


@pytest.mark.parametrize("backend", ["sqlite"])  # the planner choice this pins is SQLite's
def test_a_list_filtered_by_agent_reads_the_agents_index_not_every_run(engine: sa.Engine) -> None:
    """A rare combination (one agent's development runs that ended partial) used to make SQLite walk the
    whole started_at index and filter every run; the agent's index now gives the list its full order."""
    fleet = [
        RunSpec(f"agent-{i % 6}", "1.0", "development" if i % 10 == 0 else "production",
                T0 + timedelta(seconds=i), "partial" if i % 50 == 0 else "success")
        for i in range(3000)
    ]
    insert_runs(engine, fleet)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    captured: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        captured.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", capture)
    # The Query API always reads inside a set of projects; the list indexes start with the project.
    filters = RunFilters(agent_id="agent-0", environment="development", status="partial", projects=("default",))
    with engine.connect() as conn:
        items, _ = reader.list_runs(conn, filters, limit=50)
    sa.event.remove(engine, "before_cursor_execute", capture)
    wanted = ("agent-0", "development", "partial")
    expected = [s.run_id for s in fleet if (s.agent_id, s.environment, s.status) == wanted]
    assert sorted(r["run_id"] for r in items) == sorted(expected)
    statement, params = captured[0]
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params))
    assert "ix_runs_project_agent_id_started_at_run_id" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # the index gives the (started_at, run_id) order: no sort


def test_get_run_pages_steps_after_a_seq_and_keeps_the_run_totals(engine: sa.Engine, ro: sa.Engine) -> None:
    spec = RunSpec("a", "v1", "prod", T0, "success",
                   [StepSpec(seq, "tool", f"s{seq}", seq * 10.0) for seq in range(1, 8)])
    insert_runs(engine, [spec])
    pages = []
    after: int | None = 0
    with ro.connect() as conn:
        while after is not None:
            detail = reader.get_run(conn, spec.run_id, steps_after=after, steps_limit=3)
            assert detail is not None
            pages.append([s["seq"] for s in detail["steps"]])
            after = detail["next_steps_after"]
    assert pages == [[1, 2, 3], [4, 5, 6], [7]]


@pytest.mark.parametrize("backend", ["sqlite"])  # the plan this pins is SQLite's
def test_a_page_of_steps_is_one_range_of_the_primary_key(engine: sa.Engine) -> None:
    """Bounded work per page: the page is read from the (run_id, seq) key in order, with no sort of the run."""
    spec = RunSpec("a", "v1", "prod", T0, "success", [StepSpec(seq, "tool", "t", float(seq)) for seq in range(1, 300)])
    insert_runs(engine, [spec])
    captured: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        captured.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        detail = reader.get_run(conn, spec.run_id, steps_after=100, steps_limit=20)
    sa.event.remove(engine, "before_cursor_execute", capture)
    assert detail is not None and [s["seq"] for s in detail["steps"]] == list(range(101, 121))
    statement, params = next((st, p) for st, p in captured if "FROM steps" in st and "steps.seq >" in st)
    assert "LIMIT" in statement
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params))
    assert "sqlite_autoindex_steps_1 (run_id=? AND seq>?)" in plan, plan  # the (run_id, seq) key
    assert "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize("backend", ["postgresql"])  # the plan this pins is PostgreSQL's
def test_a_page_of_a_long_run_is_an_ordered_primary_key_scan_on_postgresql(engine: sa.Engine, ro: sa.Engine) -> None:
    """Unanalysed (or average-run) statistics made PostgreSQL bitmap-scan every step of a long run and sort
    them for the LIMIT; the page must be the primary key read in order, stopping at the LIMIT."""
    short = RunSpec("a", "v1", "prod", T0, "success", [StepSpec(1, "tool", "t", 1.0)])
    long = RunSpec("a", "v1", "prod", T0, "success", [StepSpec(1, "tool", "t", 1.0)])
    insert_runs(engine, [short, long])
    with engine.begin() as conn:  # 20,000 more steps in one statement (row by row takes half a minute)
        conn.exec_driver_sql(
            "INSERT INTO steps (run_id, seq, step_type, name, status, started_at, ended_at, latency_ms)"
            " SELECT %(run_id)s, g, 'tool', 't', 'ok', %(t)s, %(t)s, 1.0 FROM generate_series(2, 20000) AS g",
            {"run_id": long.run_id, "t": T0},
        )
    captured: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        captured.append((statement, params))

    sa.event.listen(ro, "before_cursor_execute", capture)
    with ro.connect() as conn:
        detail = reader.get_run(conn, long.run_id, steps_after=10, steps_limit=20)
        sa.event.remove(ro, "before_cursor_execute", capture)
        statement, params = next((st, p) for st, p in captured if "FROM steps" in st and "steps.seq >" in st)
        # Same transaction: the settings get_run made for its page still hold.
        plan = "\n".join(str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {statement}", params))  # type: ignore[arg-type]
    assert detail is not None and [s["seq"] for s in detail["steps"]] == list(range(11, 31))
    assert "Index Scan using pk_steps" in plan, plan
    assert "Sort" not in plan and "Bitmap" not in plan, plan


def test_an_otlp_run_pages_in_start_order_whatever_order_its_spans_arrived_in(engine: sa.Engine) -> None:
    """OTLP seqs follow arrival and are never renumbered; the run detail orders by start time (then
    seq) through the (run_id, started_at, seq) index, and a page continues after the given step."""
    from datetime import datetime

    from agenttracer.store.otlp_assemble import SpanRecord
    from agenttracer.store.sql.write.otlp_write import write_spans

    run_id = "22222222-3333-4444-5555-666666666666"
    now = datetime.now(timezone.utc)

    def span(i: int, start_ms: int) -> SpanRecord:
        start = now - timedelta(minutes=5) + timedelta(milliseconds=start_ms)
        return SpanRecord(run_id=run_id, span_id=f"{i:016x}", parent_span_id="00000000000000ff", step_type="tool",
                          name=f"t{i}", started_at=start, ended_at=start + timedelta(milliseconds=1), latency_ms=1.0,
                          error=False, error_class=None, failure_code=None, explicit_attempt=None, agent_name=None,
                          agent_version=None, meta={}, dropped=0)

    starts = [50, 40, 40, 10, 30, 40, 20, 0]  # later requests bring earlier spans; three start together
    for i, start in enumerate(starts, start=1):
        write_spans(engine, [span(i, start)], now)
    expected = sorted(range(1, len(starts) + 1), key=lambda seq: (starts[seq - 1], seq))
    pages, after = [], 0
    captured: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        captured.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        while True:
            detail = reader.get_run(conn, run_id, steps_after=after, steps_limit=3)
            assert detail is not None
            pages.append([s["seq"] for s in detail["steps"]])
            if detail["next_steps_after"] is None:
                break
            after = detail["next_steps_after"]
        assert reader.get_run(conn, run_id, steps_after=99, steps_limit=3)["steps"] == []  # type: ignore[index]
    sa.event.remove(engine, "before_cursor_execute", capture)
    assert [seq for page in pages for seq in page] == expected and [len(p) for p in pages] == [3, 3, 2]
    if engine.dialect.name == "sqlite":
        statement, params = next((st, p) for st, p in captured if "steps.started_at >" in st)
        with engine.connect() as conn:
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params))
        assert "ix_steps_run_id_started_at_seq" in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize("backend", ["postgresql"])  # the plan this pins is PostgreSQL's
def test_a_page_of_a_long_otlp_run_is_an_ordered_scan_of_its_start_order_index(engine: sa.Engine,
                                                                               ro: sa.Engine) -> None:
    spec = RunSpec("a", "v1", "prod", T0, "success", [])
    insert_runs(engine, [spec])
    with engine.begin() as conn:  # 20,000 OTLP steps whose seqs (arrival) run against their start order
        conn.exec_driver_sql(
            "INSERT INTO steps (run_id, seq, step_type, name, status, started_at, ended_at, latency_ms, span_id)"
            " SELECT %(run_id)s, g, 'tool', 't', 'ok', %(t)s - g * interval '1 ms', %(t)s, 1.0,"
            " lpad(to_hex(g), 16, '0')"
            " FROM generate_series(1, 20000) AS g",
            {"run_id": spec.run_id, "t": T0},
        )
    captured: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        captured.append((statement, params))

    sa.event.listen(ro, "before_cursor_execute", capture)
    with ro.connect() as conn:
        detail = reader.get_run(conn, spec.run_id, steps_after=20000 - 10, steps_limit=20)
        sa.event.remove(ro, "before_cursor_execute", capture)
        statement, params = next((st, p) for st, p in captured if "steps.started_at >" in st)
        plan = "\n".join(str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {statement}", params))  # type: ignore[arg-type]
    assert detail is not None and [s["seq"] for s in detail["steps"]] == list(range(20000 - 11, 20000 - 31, -1))
    assert "ix_steps_run_id_started_at_seq" in plan, plan
    assert "Sort" not in plan and "Bitmap" not in plan, plan
