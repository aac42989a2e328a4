"""Bulk export and import of stored runs, projects and keys on ClickHouse (`agenttracer copy`).

Implements ``store.transfer.Transfer`` over the tables of ``schema/migrations/v0001_base.py``. The
records are the SQL store's columns; here they map onto ClickHouse's rows: a run's failure is folded
into its row (``failure_step_seq``, ``failure_message``, ``failure_recorded_at``), identity strings are
'' where SQL has NULL, metadata is JSON text, and a run whose start is unknown has the epoch as
``started_at`` (the column cannot be NULL: it is in the sorting key).

Reads are exact without ``FINAL``: the newest version of each run (``LIMIT 1 BY run_id``) and of each
step (``LIMIT 1 BY run_id, seq``) is taken, tombstones dropped. Imported rows carry as version the
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
from datetime import datetime, timezone
from typing import Any

import orjson

from agenttracer.model import UNIX_EPOCH
from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.projects import ProjectInfo
from agenttracer.store.transfer import (
    Access,
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

_NEWEST_RUNS = f"""
SELECT {", ".join(_RUN_COLUMNS)} FROM runs WHERE run_id IN {{ids:Array(String)}}
ORDER BY run_id, version DESC LIMIT 1 BY run_id
"""
_NEWEST_STEPS = f"""
SELECT {", ".join(_STEP_COLUMNS)} FROM steps WHERE run_id IN {{ids:Array(String)}}
ORDER BY run_id, seq, version DESC LIMIT 1 BY run_id, seq
"""


class ClickHouseTransfer:
    """``Transfer`` for one ClickHouse database (a server or the embedded engine)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def export_runs(self, after: str | None, limit: int) -> list[StoredRun]:
        position = after or ""
        while True:
            ids = [row[0] for row in self._conn.query(
                "SELECT DISTINCT run_id FROM runs WHERE run_id > {after:String} ORDER BY run_id LIMIT {n:UInt32}",
                {"after": position, "n": limit},
            ).rows]
            if not ids:
                return []
            found = self.runs_by_id(ids)
            if found:  # a page of nothing but deleted runs: look further
                return found
            position = ids[-1]

    def runs_by_id(self, run_ids: Sequence[str]) -> list[StoredRun]:
        if not run_ids:
            return []
        ids = sorted(set(run_ids))
        runs = [row for row in self._conn.query(_NEWEST_RUNS, {"ids": ids}).dicts() if not row["is_deleted"]]
        if not runs:
            return []
        steps: dict[str, list[StepRecord]] = defaultdict(list)
        for row in self._conn.query(_NEWEST_STEPS, {"ids": [r["run_id"] for r in runs]}).dicts():
            if not row["is_deleted"]:
                steps[row["run_id"]].append(_step_record(row))
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
