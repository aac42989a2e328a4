"""The ClickHouse adapter: URLs, parameters bound by the engine whatever they hold, values back as Python
values, and errors classified without a driver import."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from agenttracer.store.clickhouse.connection import (
    ClickHouseError,
    ClickHouseUnavailable,
    connect,
    parse_url,
)


def test_urls_name_a_directory_or_a_server_and_a_database() -> None:
    embedded = parse_url("chdb:///var/lib/at?database=prod_1")
    assert (embedded.scheme, embedded.path, embedded.database) == ("chdb", "/var/lib/at", "prod_1")
    server = parse_url("clickhouse://writer:s%40cret@ch.internal:8123/agenttracer")
    assert (server.host, server.port, server.username, server.password, server.database) == (
        "ch.internal", 8123, "writer", "s@cret", "agenttracer")  # fmt: skip
    assert parse_url("clickhouses://ch.internal").port == 8443
    for bad in ("chdb://relative/dir", "chdb:///dir?database=1x", "clickhouse:///db", "mysql://h/db"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_parameters_round_trip_whatever_they_hold(empty_chdb_url: str) -> None:
    conn = connect(empty_chdb_url)
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    texts = ["plain", "it's", "back\\slash", "tab\there", "new\nline", "", "{x:String}"]
    try:
        row = conn.query(
            "SELECT {ids:Array(String)} AS ids, {t:DateTime64(6, 'UTC')} AS t, {n:Nullable(String)} AS n,"
            " {s:String} AS s, {b:Bool} AS b, {f:Float64} AS f, nan AS x",
            {"ids": texts, "t": moment, "n": None, "s": "it's \\ a\ttab", "b": True, "f": 1.5},
        ).rows[0]
    finally:
        conn.close()
    assert row[:6] == (texts, moment, None, "it's \\ a\ttab", True, 1.5)
    assert row[6] != row[6]  # NaN comes back as a float NaN


def test_answers_keep_every_type_exact(empty_chdb_url: str) -> None:
    conn = connect(empty_chdb_url)
    try:
        row = conn.query(
            "SELECT toDecimal64('12345.6789', 4) AS d, toDateTime64('2026-01-02 03:04:05.678901', 6, 'UTC') AS t6,"
            " toDateTime('2026-01-02 03:04:05', 'UTC') AS t0, toDate('2026-01-02') AS day,"
            " CAST(NULL, 'Nullable(DateTime64(6, \\'UTC\\'))') AS nt, toLowCardinality(toNullable('x')) AS lc,"
            " map('a', toUInt64(18446744073709551615)) AS m, tuple(1, 'b') AS tp, [inf, -1.5] AS fs,"
            " [toDateTime64('1970-01-01 00:00:00', 6, 'UTC')] AS ts, toInt64(-7) AS i"
        )
        empty = conn.query("SELECT number FROM numbers(3) WHERE number > 5")
        many = conn.query("SELECT number, toString(number) FROM numbers(200000)").rows
    finally:
        conn.close()
    assert row.column_names[:3] == ("d", "t6", "t0")
    utc = timezone.utc
    assert row.rows == [(
        Decimal("12345.6789"), datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=utc),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=utc), date(2026, 1, 2), None, "x", {"a": 2**64 - 1}, (1, "b"),
        [float("inf"), -1.5], [datetime(1970, 1, 1, tzinfo=utc)], -7,
    )]
    assert all(v.tzinfo is not None for v in row.rows[0][1:3])
    assert empty.rows == []
    assert len(many) == 200000 and many[-1] == (199999, "199999")  # several blocks, in order


def test_errors_carry_the_code_and_say_when_to_retry(empty_chdb_url: str) -> None:
    conn = connect(empty_chdb_url)
    try:
        with pytest.raises(ClickHouseError) as failed:
            conn.query("SELECT * FROM no_such_table")
    finally:
        conn.close()
    assert failed.value.code == 60 and not isinstance(failed.value, ClickHouseUnavailable)
    assert isinstance(ClickHouseError.from_driver(ConnectionRefusedError("refused")), ClickHouseUnavailable)
    out_of_memory = RuntimeError("Code: 241. DB::Exception: memory limit")
    assert isinstance(ClickHouseError.from_driver(out_of_memory), ClickHouseUnavailable)


def test_a_second_process_cannot_open_a_chdb_directory_one_process_holds(empty_chdb_url: str) -> None:
    conn = connect(empty_chdb_url)
    code = (
        "from agenttracer.store.clickhouse.connection import ClickHouseUnavailable, connect\n"
        "try:\n"
        f"    connect({empty_chdb_url!r})\n"
        "except ClickHouseUnavailable as exc:\n"
        "    print(exc)\n"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    finally:
        conn.close()
    assert "another process holds it" in out.stdout and "agenttracer up" in out.stdout, out.stderr[-2000:]


def test_threads_sharing_a_connection_get_their_own_parameters(empty_chdb_url: str) -> None:
    conn = connect(empty_chdb_url)
    wrong: list[object] = []

    def ask(k: int) -> None:
        for i in range(60):
            try:
                got = conn.query("SELECT {a:UInt32} + {b:UInt32}", {"a": k, "b": i}).rows[0][0]
            except ClickHouseError as exc:
                wrong.append(exc.code)
                continue
            if got != k + i:
                wrong.append((k, i, got))

    threads = [threading.Thread(target=ask, args=(k * 1000,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        conn.close()
    assert wrong == []
