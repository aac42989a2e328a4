"""Bulk export and import of stored runs, projects and keys on ClickHouse (`agenttracer copy`).

Implements ``store.transfer.Transfer`` over the tables of ``schema/migrations/v0001_base.py``. The
records are the SQL store's columns; here they map onto ClickHouse's rows: a run's failure is folded
into its row (``failure_step_seq``, ``failure_message``, ``failure_recorded_at``), identity strings are
'' where SQL has NULL, metadata is JSON text, and a run whose start is unknown has the epoch as
``started_at`` (the column cannot be NULL: it is in the sorting key).

Export walks the runs in the sorting key's order (project, agent_id, started_at, run_id), the order the
rows are kept in: a page of runs is a range of the runs table, and their steps, sorted by (project,
agent_id, hour, run_id, seq), sit in a few granules that the run_id bloom filter finds. (Pages in
run_id order would scatter over every granule of both tables: each page a read of the whole table.)
The position after a page — those four values — is the cursor. Reads are exact without ``FINAL``: the
newest version of each run (``LIMIT 1 BY run_id``) and of each step (``LIMIT 1 BY run_id, seq``) is
taken, tombstones dropped. Imported rows carry as version the
run's ``updated_at`` in microseconds, so importing the same page again writes identical rows (which the
insert deduplication tokens drop, and merges would fold anyway) and any later write by the store
supersedes them. ClickHouse has no transactions: steps are inserted before their runs, so a page cut
short leaves runs absent (imported again on the next attempt), never a run without its steps.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from agenttracer.model import UNIX_EPOCH
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.projects import ProjectInfo
from agenttracer.store.transfer import (
    Access,
    ExportedPage,
    FailureRecord,
    Imported,
    KeyRecord,
    RunRecord,
    StepRecord,
    StoredCounts,
    StoredRun,
)

__all__ = ["ClickHouseTransfer"]

_IDENTITY = ("agent_id", "agent_version", "environment")
_RUN_FIELDS = [f.name for f in fields(RunRecord)]
_STEP_FIELDS = [f.name for f in fields(StepRecord)]
_STEP_META = _STEP_FIELDS.index("meta")
_FAILURE_COLUMNS = ("failure_step_seq", "failure_message", "failure_recorded_at")
_RUN_COLUMNS = [*_RUN_FIELDS, *_FAILURE_COLUMNS, "version", "is_deleted"]
_STEP_COLUMNS = ["project", *_IDENTITY, "run_id", *_STEP_FIELDS, "version", "is_deleted"]
_KEY_COLUMNS = [f.name for f in fields(KeyRecord)]

# Timestamps travel as integer microseconds: exact, and turned into datetimes far faster than their text.
_RUN_TIMES = ("started_at", "ended_at", "ingested_at", "updated_at", "failure_recorded_at")
_STEP_TIMES = ("started_at", "ended_at")


def _select(columns: Sequence[str], times: Sequence[str]) -> str:
    return ", ".join(f"toUnixTimestamp64Micro({c}) AS {c}_us" if c in times else c for c in columns)


_NEWEST_RUNS = f"""
SELECT {_select(_RUN_COLUMNS, _RUN_TIMES)} FROM runs WHERE run_id IN {{ids:Array(String)}}
ORDER BY run_id, version DESC LIMIT 1 BY run_id
"""
# One page of positions in the sorting key's order (``optimize_read_in_order``: a range read of the
# primary key, not a sort of the table).
_POSITIONS = """
SELECT project, agent_id, toUnixTimestamp64Micro(started_at), run_id FROM runs WHERE {where}
ORDER BY project, agent_id, started_at, run_id LIMIT 1 BY project, agent_id, started_at, run_id LIMIT {{n:UInt32}}
"""
# After a position, spelt out column by column so that the primary key's index narrows the read.
_AFTER = (
    "(project > {p:String} OR (project = {p:String} AND (agent_id > {a:String} OR (agent_id = {a:String} AND"
    " (started_at > {t:DateTime64(6, 'UTC')} OR (started_at = {t:DateTime64(6, 'UTC')}"
    " AND run_id > {r:String}))))))"
)
_NEWEST_STEPS = f"""
SELECT {_select(_STEP_COLUMNS, _STEP_TIMES)} FROM steps WHERE run_id IN {{ids:Array(String)}}
ORDER BY run_id, seq, version DESC LIMIT 1 BY run_id, seq
"""


class ClickHouseTransfer:
    """``Transfer`` for one ClickHouse database (a server or the embedded engine)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def export_runs(self, after: str | None, limit: int) -> ExportedPage:
        position: tuple[Any, ...] | None = _decode_position(after)
        while True:
            params: dict[str, Any] = {"n": limit}
            where = "1"
            if position is not None:
                where = _AFTER
                params.update(zip(("p", "a", "t", "r"), position, strict=True))
            walked = [(p, a, _at(t), r) for p, a, t, r in self._conn.query(_POSITIONS.format(where=where), params).rows]
            if not walked:
                return ExportedPage([], _encode_position(position))
            position = walked[-1]
            newest = self._newest_runs([row[3] for row in walked])
            # A run whose identity or start arrived after its first row has older versions elsewhere in
            # the order: it is taken where its newest version is, so once.
            here = [newest[row[3]] for row in walked if row[3] in newest and _position(newest[row[3]]) == row]
            if here:  # else a page of nothing but tombstones and superseded versions: look further
                return ExportedPage(self._complete(here), _encode_position(position))

    def runs_by_id(self, run_ids: Sequence[str]) -> list[StoredRun]:
        if not run_ids:
            return []
        newest = self._newest_runs(run_ids)
        return self._complete([newest[run_id] for run_id in sorted(newest)])

    def _newest_runs(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The newest version of each of ``run_ids`` that is stored and not deleted, by run_id."""
        rows = self._conn.query(_NEWEST_RUNS, {"ids": sorted(set(run_ids))}).dicts()
        return {row["run_id"]: _with_times(row, _RUN_TIMES) for row in rows if not row["is_deleted"]}

    def _complete(self, runs: list[dict[str, Any]]) -> list[StoredRun]:
        """The run rows ``runs`` (newest versions) as records, with their steps and failures, in that order."""
        if not runs:
            return []
        steps: dict[str, list[StepRecord]] = defaultdict(list)
        for row in self._conn.query(_NEWEST_STEPS, {"ids": sorted(r["run_id"] for r in runs)}).dicts():
            if not row["is_deleted"]:
                steps[row["run_id"]].append(_step_record(_with_times(row, _STEP_TIMES)))
        return [StoredRun(_run_record(row), tuple(steps[row["run_id"]]), _failure_record(row)) for row in runs]

    def import_runs(self, page: Sequence[StoredRun]) -> Imported:
        result = Imported()
        if not page:
            return result
        stored = self._present([item.run.run_id for item in page])
        new: list[StoredRun] = []
        for item in page:
            if item.run.run_id in stored:  # stored before, or earlier in this page
                result.skipped.append(item.run.run_id)
                continue
            stored.add(item.run.run_id)
            new.append(item)
        if not new:
            return result
        token = hashlib.sha256("\n".join(item.run.run_id for item in new).encode()).hexdigest()
        self._ensure_projects({item.run.project for item in new})
        step_rows = [_step_row(item.run, step) for item in new for step in item.steps]
        if step_rows:
            self._conn.insert("steps", _STEP_COLUMNS, step_rows, token=f"copy-steps-{token}")
        self._conn.insert("runs", _RUN_COLUMNS, [_run_row(item) for item in new], token=f"copy-runs-{token}")
        result.runs, result.steps = len(new), len(step_rows)
        return result

    def counts(self) -> dict[str, StoredCounts]:
        out: dict[str, StoredCounts] = defaultdict(StoredCounts)
        runs = self._conn.query(
            "SELECT project, count(), countIf(failed) FROM ("
            " SELECT argMax(project, version) AS project, argMax(is_deleted, version) AS deleted,"
            "  argMax(failure_recorded_at, version) IS NOT NULL AS failed FROM runs GROUP BY run_id"
            ") WHERE deleted = 0 GROUP BY project"
        )
        for project, n, failed in runs.rows:
            out[project].runs, out[project].failures = int(n), int(failed)
        steps = self._conn.query(
            "SELECT project, count() FROM ("
            " SELECT argMax(project, version) AS project, argMax(is_deleted, version) AS deleted"
            " FROM steps GROUP BY run_id, seq"
            ") WHERE deleted = 0 GROUP BY project"
        )
        for project, n in steps.rows:
            out[project].steps = int(n)
        return dict(out)

    def export_access(self) -> Access:
        projects = self._conn.query(
            "SELECT slug, retention_days, created_at FROM projects FINAL ORDER BY slug"
        ).rows
        keys = self._conn.query(f"SELECT {', '.join(_KEY_COLUMNS)} FROM api_keys FINAL ORDER BY key_id").dicts()
        return Access(
            projects=tuple(ProjectInfo(*row) for row in projects),
            keys=tuple(KeyRecord(**{**row, "projects": tuple(row["projects"])}) for row in keys),
        )

    def import_access(self, access: Access) -> None:
        have = set(self._slugs())
        rows = [[p.slug, p.retention_days, p.created_at, _version(p.created_at), 0]
                for p in access.projects if p.slug not in have]
        if rows:
            self._conn.insert("projects", ["slug", "retention_days", "created_at", "version", "is_deleted"], rows)
        stored = {row[0] for row in self._conn.query("SELECT key_id FROM api_keys").rows}
        hashes = {row[0] for row in self._conn.query("SELECT key_hash FROM api_keys FINAL").rows}
        new = [k for k in access.keys if k.key_id not in stored and k.key_hash not in hashes]
        if new:
            key_rows = [[*(getattr(k, c) if c != "projects" else list(k.projects) for c in _KEY_COLUMNS),
                         _version(k.revoked_at or k.created_at)] for k in new]
            self._conn.insert("api_keys", [*_KEY_COLUMNS, "version"], key_rows)

    def _present(self, run_ids: Iterable[str]) -> set[str]:
        """Which of ``run_ids`` are stored (newest version not a tombstone)."""
        rows = self._conn.query(
            "SELECT run_id, is_deleted FROM runs WHERE run_id IN {ids:Array(String)}"
            " ORDER BY run_id, version DESC LIMIT 1 BY run_id",
            {"ids": sorted(set(run_ids))},
        ).rows
        return {run_id for run_id, deleted in rows if not deleted}

    def _slugs(self) -> list[str]:
        return [row[0] for row in self._conn.query("SELECT slug FROM projects FINAL").rows]

    def _ensure_projects(self, slugs: set[str]) -> None:
        """Every project a run names exists, as when the writer stores a run of a new project."""
        missing = sorted(slugs - set(self._slugs()))
        if missing:
            now = datetime.now(timezone.utc)
            rows = [[slug, None, now, _version(now), 0] for slug in missing]
            self._conn.insert("projects", ["slug", "retention_days", "created_at", "version", "is_deleted"], rows)


def _at(microseconds: int | None) -> datetime | None:
    return None if microseconds is None else UNIX_EPOCH + timedelta(microseconds=microseconds)


def _with_times(row: dict[str, Any], times: Sequence[str]) -> dict[str, Any]:
    for name in times:
        row[name] = _at(row.pop(f"{name}_us"))
    return row


def _position(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["project"], row["agent_id"], row["started_at"], row["run_id"]


def _encode_position(position: Sequence[Any] | None) -> str | None:
    """A position in the sorting key as the opaque text a checkpoint keeps."""
    if position is None:
        return None
    project, agent_id, started_at, run_id = position
    return orjson.dumps([project, agent_id, started_at.isoformat(), run_id]).decode()


def _decode_position(text: str | None) -> tuple[str, str, datetime, str] | None:
    if text is None:
        return None
    project, agent_id, started_at, run_id = orjson.loads(text)
    return project, agent_id, datetime.fromisoformat(started_at), run_id


def _version(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000)


def _run_row(item: StoredRun) -> list[Any]:
    run, failure = item.run, item.failure
    values: dict[str, Any] = {name: getattr(run, name) for name in _RUN_FIELDS}
    for name in _IDENTITY:
        values[name] = values[name] or ""
    values["started_at"] = run.started_at or UNIX_EPOCH
    values["meta"] = orjson.dumps(run.meta).decode()
    row = [values[name] for name in _RUN_FIELDS]
    row += [failure.step_seq, failure.message, failure.recorded_at] if failure else [None, None, None]
    return [*row, _version(run.updated_at), 0]


def _step_row(run: RunRecord, step: StepRecord) -> list[Any]:
    values = [getattr(step, name) for name in _STEP_FIELDS]
    values[_STEP_META] = orjson.dumps(step.meta).decode()
    identity = [getattr(run, name) or "" for name in _IDENTITY]
    return [run.project, *identity, run.run_id, *values, _version(run.updated_at), 0]


def _run_record(row: dict[str, Any]) -> RunRecord:
    values = {name: row[name] for name in _RUN_FIELDS}
    for name in _IDENTITY:
        values[name] = values[name] or None
    if values["started_at"] == UNIX_EPOCH:
        values["started_at"] = None
    values["meta"] = orjson.loads(values["meta"])
    return RunRecord(**values)


def _step_record(row: dict[str, Any]) -> StepRecord:
    values = {name: row[name] for name in _STEP_FIELDS}
    values["meta"] = orjson.loads(values["meta"])
    return StepRecord(**values)


def _failure_record(row: dict[str, Any]) -> FailureRecord | None:
    if row["failure_recorded_at"] is None:
        return None
    return FailureRecord(
        failure_type=row["failure_type"], failure_code=row["failure_code"], step_seq=row["failure_step_seq"],
        message=row["failure_message"], recorded_at=row["failure_recorded_at"],
    )
