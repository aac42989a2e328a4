"""Rows of ``runs`` and ``steps`` as the ClickHouse writers read and write them, and the version clock.

Every write of a row is a new version of it (ReplacingMergeTree): ``next_version()`` gives this
process's versions, increasing even when the wall clock steps back. Versions are nanoseconds since the
epoch, so the versions of two processes order by when they were written (last writer wins).

Readers see the row model of the SQL store: identity strings stored as '' (the sorting key cannot be
NULL) are None here, ``meta`` is a dict, and the failure folded into the run row is a dict of the SQL
``failures`` columns (``failure_of``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from agenttracer.store.clickhouse.connection import Connection

RUN_COLUMNS: tuple[str, ...] = (
    "project",
    "agent_id",
    "started_at",
    "run_id",
    "agent_version",
    "environment",
    "status",
    "ended_at",
    "duration_ms",
    "step_count",
    "error_step_count",
    "retry_count",
    "failure_type",
    "failure_code",
    "failure_step_seq",
    "failure_message",
    "failure_recorded_at",
    "meta",
    "meta_removed",
    "ingested_at",
    "updated_at",
    "root_span_id",
    "root_error",
    "source",
    "abandoned",
    "version",
    "is_deleted",
)
STEP_COLUMNS: tuple[str, ...] = (
    "project",
    "agent_id",
    "agent_version",
    "environment",
    "run_id",
    "seq",
    "step_type",
    "name",
    "status",
    "started_at",
    "ended_at",
    "latency_ms",
    "attempt",
    "retry_of_seq",
    "parent_seq",
    "error_class",
    "failure_code",
    "meta",
    "meta_removed",
    "span_id",
    "parent_span_id",
    "version",
    "is_deleted",
)
IDENTITY = ("agent_id", "agent_version", "environment")
# The failure folded into a run row, under the names of the SQL store's ``failures`` columns.
FAILURE_FIELDS = {
    "failure_type": "failure_type",
    "failure_code": "failure_code",
    "step_seq": "failure_step_seq",
    "message": "failure_message",
    "recorded_at": "failure_recorded_at",
}

_clock_lock = threading.Lock()
_last_version = 0


def next_version() -> int:
    """A version greater than every one this process gave before."""
    global _last_version
    with _clock_lock:
        _last_version = max(time.time_ns(), _last_version + 1)
        return _last_version


def newest_runs(conn: Connection, run_ids: Sequence[str], project: str | None = None) -> dict[str, dict[str, Any]]:
    """The newest stored version of each of ``run_ids`` (in any project unless ``project``), as the SQL
    store's row dicts; deleted runs are absent."""
    if not run_ids:
        return {}
    where = "run_id IN {ids:Array(String)}"
    params: dict[str, Any] = {"ids": list(run_ids)}
    if project is not None:
        where += " AND project = {project:String}"
        params["project"] = project
    result = conn.query(
        f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE {where} ORDER BY version DESC LIMIT 1 BY run_id", params
    )
    found = {}
    for row in result.dicts():
        if row["is_deleted"]:
            continue
        found[row["run_id"]] = run_from_stored(row)
    return found


def run_from_stored(row: dict[str, Any]) -> dict[str, Any]:
    """A stored run row as the writers' RunState row: '' identity -> None, meta parsed; the stored
    sorting key kept under ``_key`` (to replace the row when the key moves)."""
    for name in IDENTITY:
        if row[name] == "":
            row[name] = None
    row["meta"] = orjson.loads(row["meta"]) if row["meta"] else {}
    row["_key"] = (row["agent_id"] or "", row["started_at"])
    return row


def failure_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The run's stored failure as a ``failures`` row dict, or None."""
    if row["failure_type"] is None:
        return None
    return {"run_id": row["run_id"], **{name: row[column] for name, column in FAILURE_FIELDS.items()}}


def run_values(row: dict[str, Any], version: int, now: datetime) -> tuple[Any, ...]:
    """The values of a new version of run ``row`` in RUN_COLUMNS order."""
    ended, started = row["ended_at"], row["started_at"]
    duration = (ended - started).total_seconds() * 1000.0 if ended and started else None
    values = {
        **row,
        "agent_id": row["agent_id"] or "",
        "agent_version": row["agent_version"] or "",
        "environment": row["environment"] or "",
        "duration_ms": duration,
        "meta": orjson.dumps(row["meta"] or {}).decode(),
        "meta_removed": row["meta_removed"] or 0,
        "updated_at": now,
        "abandoned": bool(row["abandoned"]),
        "version": version,
        "is_deleted": 0,
    }
    return tuple(values[name] for name in RUN_COLUMNS)


def run_tombstone(row: dict[str, Any], version: int) -> tuple[Any, ...] | None:
    """A tombstone for the stored version of ``row`` when its sorting key moved (None when it did not):
    the old key's row is then gone, at the next merge or at once for FINAL readers."""
    key = row.get("_key")
    if key is None or key == (row["agent_id"] or "", row["started_at"]):
        return None
    old_agent, old_start = key
    values = {name: _EMPTY_RUN.get(name) for name in RUN_COLUMNS}
    values.update(
        project=row["project"], agent_id=old_agent, started_at=old_start, run_id=row["run_id"],
        ingested_at=row["ingested_at"], updated_at=row["updated_at"], source=row["source"],
        version=version, is_deleted=1,
    )  # fmt: skip
    return tuple(values[name] for name in RUN_COLUMNS)


_EMPTY_RUN: dict[str, Any] = {
    "agent_version": "",
    "environment": "",
    "status": "running",
    "step_count": 0,
    "error_step_count": 0,
    "retry_count": 0,
    "meta": "{}",
    "meta_removed": 0,
    "abandoned": False,
}


def step_values(
    project: str, identity: Sequence[str | None], values: dict[str, Any], version: int, deleted: int = 0
) -> tuple[Any, ...]:
    """A step row in STEP_COLUMNS order from a step event's (or a stored step's) column values."""
    meta = values.get("meta") or {}
    return (
        project,
        identity[0] or "",
        identity[1] or "",
        identity[2] or "",
        values["run_id"],
        values["seq"],
        values["step_type"],
        values["name"],
        values["status"],
        values["started_at"],
        values["ended_at"],
        float(values["latency_ms"]),
        values.get("attempt") or 1,
        values.get("retry_of_seq"),
        values.get("parent_seq"),
        values.get("error_class"),
        values.get("failure_code"),
        meta if isinstance(meta, str) else orjson.dumps(meta).decode(),
        values.get("meta_removed") or 0,
        values.get("span_id"),
        values.get("parent_span_id"),
        version,
        deleted,
    )


def insert_runs(conn: Connection, rows: Iterable[tuple[Any, ...]], token: str) -> None:
    conn.insert("runs", RUN_COLUMNS, list(rows), token=token)


def insert_steps(conn: Connection, rows: Iterable[tuple[Any, ...]], token: str) -> None:
    conn.insert("steps", STEP_COLUMNS, list(rows), token=token)
