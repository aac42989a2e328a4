"""The ClickHouse schema: the migrations apply once, in order, and the stored strings are bounded by the
same limits as the model (a prompt cannot fit in any column)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from agenttracer import model
from agenttracer.store.clickhouse.connection import ClickHouseError, connect
from agenttracer.store.clickhouse.schema.migrate import (
    current_revision,
    head_revision,
    migrations,
    upgrade,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)

# Column -> the model's limit for it (characters); the CHECK constraints must say the same.
EXPECTED_LIMITS = {
    ("runs", "agent_id"): model.MAX_ID_LEN,
    ("runs", "agent_version"): model.MAX_VERSION_LEN,
    ("runs", "environment"): model.MAX_ENVIRONMENT_LEN,
    ("runs", "project"): model.MAX_PROJECT_LEN,
    ("runs", "failure_code"): model.MAX_CODE_LEN,
    ("runs", "failure_message"): model.MAX_MESSAGE_LEN,
    ("steps", "agent_id"): model.MAX_ID_LEN,
    ("steps", "name"): model.MAX_NAME_LEN,
    ("steps", "error_class"): model.MAX_ERROR_CLASS_LEN,
    ("steps", "failure_code"): model.MAX_CODE_LEN,
    ("steps", "project"): model.MAX_PROJECT_LEN,
    ("projects", "slug"): model.MAX_PROJECT_LEN,
}
_CHECK_RE = re.compile(r"CHECK length(?:UTF8)?\((?:ifNull\()?(\w+)[^<]*<= (\d+)")


def _checks() -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for migration in migrations():
        for statement in migration.up:
            table = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", statement)
            if table is None:
                continue
            for match in _CHECK_RE.finditer(statement):
                found[(table.group(1), match.group(1))] = int(match.group(2))
    return found


def test_every_string_limit_matches_the_model() -> None:
    checks = _checks()
    for key, limit in EXPECTED_LIMITS.items():
        assert checks.get(key) == limit, key


def test_migrations_apply_once_in_order(empty_chdb_url: str) -> None:
    conn = connect(empty_chdb_url)
    try:
        assert current_revision(conn) is None
        numbers = [m.number for m in migrations()]
        assert numbers == sorted(numbers) and numbers[0] == 1
        assert upgrade(conn) == numbers
        assert upgrade(conn) == []
        assert current_revision(conn) == head_revision()
        listed = conn.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
        tables = {row[0] for row in listed.rows}
        assert {"runs", "steps", "projects", "api_keys", "schema_migrations"} <= tables
    finally:
        conn.close()


def test_a_prompt_does_not_fit_in_a_step_name(chdb_url: str) -> None:
    conn = connect(chdb_url)
    columns = ("project", "agent_id", "run_id", "seq", "step_type", "name", "status", "started_at", "ended_at")
    row = ["default", "a", "r" * 36, 1, "tool", "x" * model.MAX_NAME_LEN, "ok", NOW, NOW]
    try:
        conn.insert("steps", columns, [row])
        row[5] = "x" * (model.MAX_NAME_LEN + 1)
        with pytest.raises(ClickHouseError) as refused:
            conn.insert("steps", columns, [row])
        assert refused.value.code == 469  # VIOLATED_CONSTRAINT
        assert conn.query("SELECT count() FROM steps").rows == [(1,)]
    finally:
        conn.close()


def test_a_repeated_insert_with_the_same_token_is_stored_once(chdb_url: str) -> None:
    conn = connect(chdb_url)
    columns = ("slug", "created_at", "version")
    try:
        conn.insert("projects", columns, [("a", NOW, 1)], token="batch-1")
        conn.insert("projects", columns, [("a", NOW, 1)], token="batch-1")
        conn.insert("projects", columns, [("b", NOW, 1)], token="batch-2")
        assert conn.query("SELECT slug FROM projects WHERE slug IN ('a', 'b') ORDER BY slug").rows == [("a",), ("b",)]
    finally:
        conn.close()


def test_an_insert_writes_packed_parts_in_the_tables_every_batch_writes(chdb_url: str) -> None:
    conn = connect(chdb_url)
    columns = ("project", "agent_id", "run_id", "seq", "step_type", "name", "status", "started_at", "ended_at")
    try:
        conn.insert("steps", columns, [["default", "a", "r" * 36, 1, "tool", "t", "ok", NOW, NOW]])
        stored = conn.query(
            "SELECT table, part_storage_type FROM system.parts"
            " WHERE database = currentDatabase() AND active AND table IN ('steps', 'step_keys', 'projects')"
        ).rows
        # projects keeps the usual storage: the setting is only where every batch makes parts
        assert sorted(set(stored)) == [("projects", "Full"), ("step_keys", "Packed"), ("steps", "Packed")]
        settings = conn.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
            " AND engine_full LIKE '%min_bytes_for_full_part_storage%' ORDER BY name"
        ).rows
        assert settings == [("run_keys",), ("runs",), ("step_keys",), ("steps",)]
    finally:
        conn.close()
