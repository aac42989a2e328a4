"""Answers as Python values: one decoder for both drivers, clickhouse-connect's reader of ClickHouse's
``Native`` format.

A server answers clickhouse-connect in ``Native``; chdb is asked for the same format and its bytes go
through the same reader (``native_result``). So both drivers hand back the very same values — exact
Decimals, aware UTC datetimes, None for NULL, lists for arrays, dicts for maps, tuples for tuples —
and a result is decoded column by column in clickhouse-connect's compiled readers rather than value by
value in Python (the JSON rows this replaced spent most of a large read decoding).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True)
class Result:
    """A query's answer: column names and rows of Python values."""

    column_names: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=True)) for row in self.rows]


class _Bytes:
    """A whole answer held in memory, as the response reader takes a source (one chunk, no errors
    trailing it: chdb raises instead)."""

    __slots__ = ("data", "exception_tag", "last_message")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.last_message: bytes | None = None
        self.exception_tag: str | None = None

    @property
    def gen(self) -> Iterator[bytes]:
        yield self.data

    def close(self) -> None:
        return None


def native_result(data: bytes) -> Result:
    """The rows of a ``FORMAT Native`` answer (chdb's bytes)."""
    if not data:  # no block at all: an empty answer
        return Result((), [])
    from clickhouse_connect.driver.ctypes import RespBuffCls
    from clickhouse_connect.driver.query import QueryContext, QueryResult
    from clickhouse_connect.driver.transform import NativeTransform

    parsed = NativeTransform.parse_response(RespBuffCls(_Bytes(data)), QueryContext(column_oriented=True))
    assert isinstance(parsed, QueryResult)  # a NumpyResult only when asked for numpy
    return columns_result(parsed.column_names, parsed.column_types, parsed.result_columns)


def columns_result(names: Sequence[str], types: Sequence[Any], columns: Sequence[Sequence[Any]]) -> Result:
    """A Result from clickhouse-connect's columns: times made aware UTC (it hands back naive UTC by
    default, and stores never see a naive time), column by column where a type holds times."""
    fixed = [[_utc(v) for v in column] if "DateTime" in kind.name else column
             for kind, column in zip(types, columns, strict=True)]
    return Result(tuple(names), list(zip(*fixed, strict=True)) if fixed else [])


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, list):
        return [_utc(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_utc(v) for v in value)
    return value
