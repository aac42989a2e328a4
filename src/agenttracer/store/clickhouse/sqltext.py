"""What the adapter sends besides the caller's SQL: settings clauses, insert statements and rows, and
query parameters in the form each driver binds.

Parameters are ClickHouse's own ``{name:Type}`` placeholders, bound by the engine and never formatted
into the statement. chdb hands the engine parameters as ClickHouse text (``param_text``);
clickhouse-connect takes Python values and renders them itself (``server_params``). Timestamps go as
UTC text with microseconds either way. Rows are inserted as ``JSONCompactEachRow`` (the same bytes on
both; an array per row, in the insert's column order: no key per value to build or parse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

Params = Mapping[str, Any] | None
Settings = Mapping[str, Any] | None

# Timestamps go in as ISO 8601 text (orjson's form of an aware datetime).
INSERT_SETTINGS: dict[str, Any] = {"date_time_input_format": "best_effort"}


def settings_clause(settings: Settings) -> str:
    """`` SETTINGS a = 1, b = 'x'`` (empty for none)."""
    if not settings:
        return ""
    return " SETTINGS " + ", ".join(f"{name} = {_setting_literal(value)}" for name, value in settings.items())


def _setting_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def insert_settings(token: str | None, settings: Settings) -> dict[str, Any]:
    """An insert's settings: the input format's, the caller's, and the deduplication token."""
    merged = {**INSERT_SETTINGS, **(settings or {})}
    if token is not None:
        merged["insert_deduplication_token"] = token
    return merged


def insert_sql(table: str, columns: Sequence[str], token: str | None, settings: Settings) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}){settings_clause(insert_settings(token, settings))}"
            " FORMAT JSONCompactEachRow")


def rows_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    width = len(columns)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row of {len(row)} values for {width} columns")
    return b"\n".join(orjson.dumps(row) for row in rows)


def _utc_text(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def server_params(params: Params) -> dict[str, Any] | None:
    """Parameters for clickhouse-connect, which binds Python values itself."""
    if not params:
        return None
    return {name: _utc_text(value) if isinstance(value, datetime) else value for name, value in params.items()}


def chdb_params(params: Params) -> dict[str, str] | None:
    """Parameters for chdb, which hands the engine text."""
    return {name: param_text(value) for name, value in params.items()} if params else None


def param_text(value: Any) -> str:
    """A query parameter in ClickHouse's text form."""
    if value is None:
        return "\\N"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _utc_text(value)
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return str(value)


def _quoted(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (str, datetime)):
        text = _utc_text(value) if isinstance(value, datetime) else value
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return param_text(value)
