"""Bulk export and import of stored runs, projects and keys on SQLite and PostgreSQL (`agenttracer copy`).

Implements ``store.transfer.Transfer`` over the tables of ``store/sql/schema/tables.py``: the record
fields are the column names. Export pages by run_id on the runs' primary key, so each page is an index
range scan plus two lookups by run_id (steps, failures), whatever the page's position. Import is one
transaction per page: the runs already stored are found first and left alone, the others are inserted
with their steps and failure as they are, and their start times are marked dirty so the rollup
refreshers fold them in (the rollups themselves are never copied).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

import sqlalchemy as sa

from agenttracer.store.projects import ProjectInfo
from agenttracer.store.sql.dialect import insert
from agenttracer.store.sql.lock import write_lock
from agenttracer.store.sql.rollup.marks import mark_dirty
from agenttracer.store.sql.schema.tables import api_key_projects, api_keys, failures, projects, runs, steps
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

__all__ = ["SqlTransfer"]

_RUN_COLUMNS = [runs.c[f.name] for f in fields(RunRecord)]
_STEP_COLUMNS = [steps.c[f.name] for f in fields(StepRecord)]
_FAILURE_COLUMNS = [failures.c[f.name] for f in fields(FailureRecord)]
_KEY_COLUMNS = [api_keys.c[f.name] for f in fields(KeyRecord) if f.name != "projects"]
_RUN_NAMES = tuple(f.name for f in fields(RunRecord))
_STEP_NAMES = tuple(f.name for f in fields(StepRecord))
_FAILURE_NAMES = tuple(f.name for f in fields(FailureRecord))
_RUN_VALUES, _STEP_VALUES, _FAILURE_VALUES = (attrgetter(*n) for n in (_RUN_NAMES, _STEP_NAMES, _FAILURE_NAMES))


class SqlTransfer:
    """``Transfer`` for one SQLite or PostgreSQL database (a read-write engine)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def export_runs(self, after: str | None, limit: int) -> ExportedPage:
        query = sa.select(*_RUN_COLUMNS).order_by(runs.c.run_id).limit(limit)
        if after is not None:
            query = query.where(runs.c.run_id > after)
        with self._engine.connect() as conn:
            found = _complete(conn, [RunRecord(*row) for row in conn.execute(query)])
        return ExportedPage(found, found[-1].run.run_id if found else after)

    def runs_by_id(self, run_ids: Sequence[str]) -> list[StoredRun]:
        if not run_ids:
            return []
        query = sa.select(*_RUN_COLUMNS).where(runs.c.run_id.in_(sorted(set(run_ids)))).order_by(runs.c.run_id)
        with self._engine.connect() as conn:
            return _complete(conn, [RunRecord(*row) for row in conn.execute(query)])

    def import_runs(self, page: Sequence[StoredRun]) -> Imported:
        result = Imported()
        if not page:
            return result
        with write_lock(self._engine), self._engine.begin() as conn:
            ids = [item.run.run_id for item in page]
            stored = set(conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id.in_(ids))).scalars())
            new: list[StoredRun] = []
            for item in page:
                if item.run.run_id in stored:  # stored before, or earlier in this page
                    result.skipped.append(item.run.run_id)
                    continue
                stored.add(item.run.run_id)
                new.append(item)
            if not new:
                return result
            _ensure_projects(conn, {item.run.project for item in new})
            # Rows as tuples in column order (the records are flat: no deep copy as ``asdict`` makes).
            run_rows = [_RUN_VALUES(item.run) for item in new]
            step_rows = [(item.run.run_id, *_STEP_VALUES(s)) for item in new for s in item.steps]
            failure_rows = [(item.run.run_id, *_FAILURE_VALUES(item.failure))
                            for item in new if item.failure is not None]
            _bulk_insert(conn, runs, _RUN_NAMES, run_rows)
            _bulk_insert(conn, steps, ("run_id", *_STEP_NAMES), step_rows)
            _bulk_insert(conn, failures, ("run_id", *_FAILURE_NAMES), failure_rows)
            mark_dirty(conn, [item.run.started_at for item in new if item.run.started_at is not None])
            result.runs, result.steps = len(new), len(step_rows)
        return result

    def counts(self) -> dict[str, StoredCounts]:
        out: dict[str, StoredCounts] = defaultdict(StoredCounts)
        with self._engine.connect() as conn:
            for project, n in conn.execute(sa.select(runs.c.project, sa.func.count()).group_by(runs.c.project)):
                out[project].runs = int(n)
            for table, attr in ((steps, "steps"), (failures, "failures")):
                query = (
                    sa.select(runs.c.project, sa.func.count())
                    .select_from(table.join(runs, table.c.run_id == runs.c.run_id))
                    .group_by(runs.c.project)
                )
                for project, n in conn.execute(query):
                    setattr(out[project], attr, int(n))
        return dict(out)

    def export_access(self) -> Access:
        with self._engine.connect() as conn:
            project_rows = conn.execute(
                sa.select(projects.c.slug, projects.c.retention_days, projects.c.created_at).order_by(projects.c.slug)
            )
            found = tuple(ProjectInfo(**row._mapping) for row in project_rows)
            bound: dict[str, list[str]] = defaultdict(list)
            binding_rows = conn.execute(sa.select(api_key_projects).order_by(api_key_projects.c.project))
            for key_id, project in binding_rows:
                bound[key_id].append(project)
            key_rows = conn.execute(sa.select(*_KEY_COLUMNS).order_by(api_keys.c.key_id))
            keys = tuple(KeyRecord(**row._mapping, projects=tuple(bound[row.key_id])) for row in key_rows)
        return Access(projects=found, keys=keys)

    def import_access(self, access: Access) -> None:
        with write_lock(self._engine), self._engine.begin() as conn:
            if access.projects:
                conn.execute(
                    insert(conn, projects).on_conflict_do_nothing(), [asdict(p) for p in access.projects]
                )
            stored = set(conn.execute(sa.select(api_keys.c.key_id)).scalars())
            new = [key for key in access.keys if key.key_id not in stored]
            if not new:
                return
            rows = [{c.name: getattr(key, c.name) for c in _KEY_COLUMNS} for key in new]
            # A key whose digest is stored under another id is the same secret: left out like the others.
            conn.execute(insert(conn, api_keys).on_conflict_do_nothing(), rows)
            inserted = set(conn.execute(sa.select(api_keys.c.key_id)).scalars()) - stored
            bindings = [{"key_id": k.key_id, "project": p} for k in new if k.key_id in inserted for p in k.projects]
            if bindings:
                conn.execute(insert(conn, api_key_projects).on_conflict_do_nothing(), bindings)


def _complete(conn: sa.Connection, found: list[RunRecord]) -> list[StoredRun]:
    """The runs ``found`` with their steps (by seq) and failures."""
    if not found:
        return []
    ids = [run.run_id for run in found]
    by_run: dict[str, list[StepRecord]] = defaultdict(list)
    step_query = (
        sa.select(steps.c.run_id, *_STEP_COLUMNS).where(steps.c.run_id.in_(ids)).order_by(steps.c.run_id, steps.c.seq)
    )
    # Positional: the selected columns are the record's fields in order (mapping rows by name cost more
    # than the rest of an export together).
    for run_id, *values in conn.execute(step_query):
        by_run[run_id].append(StepRecord(*values))
    failure_of: dict[str, FailureRecord] = {}
    failure_query = sa.select(failures.c.run_id, *_FAILURE_COLUMNS).where(failures.c.run_id.in_(ids))
    for run_id, *values in conn.execute(failure_query):
        failure_of[run_id] = FailureRecord(*values)
    return [StoredRun(run, tuple(by_run.get(run.run_id, ())), failure_of.get(run.run_id)) for run in found]


def _bulk_insert(conn: sa.Connection, table: sa.Table, names: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (values in the order of ``names``) in the page's transaction: PostgreSQL by COPY,
    SQLite by executemany. COPY takes the values as they are, so the JSON columns are wrapped as such."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])
        return
    from psycopg.types.json import Jsonb

    json_at = {i for i, name in enumerate(names) if isinstance(table.c[name].type, sa.JSON)}
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            if json_at:
                row = tuple(Jsonb(v) if i in json_at else v for i, v in enumerate(row))
            copy.write_row(row)


def _ensure_projects(conn: sa.Connection, slugs: Iterable[str]) -> None:
    """Every project a run names exists, as when the writer stores a run of a new project."""
    now: datetime = datetime.now(timezone.utc)
    rows: list[dict[str, Any]] = [{"slug": s, "retention_days": None, "created_at": now} for s in sorted(slugs)]
    conn.execute(insert(conn, projects).on_conflict_do_nothing(), rows)
