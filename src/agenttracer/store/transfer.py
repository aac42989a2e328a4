"""Stored data as it moves between stores (`agenttracer copy`): the records and the `Transfer` contract.

A copy takes runs as they are stored — run, steps and failure, verdicts and counters included — and
never re-judges them, so a run reads the same from either store. Each store gives a ``Transfer``
(``Store.transfer()``) that exports its runs in a stable order, a page at a time, and imports pages
another store exported. The record fields are the stored columns, named as in the SQL schema
(``store/sql/schema/tables.py``), which every store maps its own columns onto.

Only what a store holds about telemetry and access travels: runs, steps, failures, projects and API
keys (their hashes: a key's secret is never stored anywhere, so it cannot be copied). Rollups are
derived data; the destination rebuilds its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from agenttracer.store.projects import ProjectInfo

# How many runs one page holds by default: big enough that a page is one bulk insert of ~20 k steps on
# the destination (ClickHouse wants few large inserts), small enough that a page of runs with a few
# hundred steps each stays a few hundred MB in memory at worst.
DEFAULT_PAGE_RUNS = 2000


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    project: str
    agent_id: str | None
    agent_version: str | None
    environment: str | None
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: float | None
    step_count: int
    error_step_count: int
    retry_count: int
    failure_type: str | None
    failure_code: str | None
    meta: dict[str, Any]
    meta_removed: int
    ingested_at: datetime
    updated_at: datetime
    root_span_id: str | None
    root_error: str | None
    source: str
    abandoned: bool


@dataclass(frozen=True, slots=True)
class StepRecord:
    seq: int
    step_type: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime
    latency_ms: float
    attempt: int
    retry_of_seq: int | None
    parent_seq: int | None
    error_class: str | None
    failure_code: str | None
    meta: dict[str, Any]
    meta_removed: int
    span_id: str | None
    parent_span_id: str | None


@dataclass(frozen=True, slots=True)
class FailureRecord:
    failure_type: str
    failure_code: str
    step_seq: int | None
    message: str | None
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One complete run as stored: its row, its steps by seq, its failure (at most one)."""

    run: RunRecord
    steps: tuple[StepRecord, ...] = ()
    failure: FailureRecord | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored: its hash, never its secret, and the projects it is bound to."""

    key_id: str
    scope: str
    admin: bool
    prefix: str
    key_hash: str
    last4: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    projects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Access:
    """Everything about who may read and write what: projects and keys."""

    projects: tuple[ProjectInfo, ...] = ()
    keys: tuple[KeyRecord, ...] = ()


@dataclass(slots=True)
class StoredCounts:
    """What one project holds: the figures a copy compares between source and destination."""

    runs: int = 0
    steps: int = 0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class ExportedPage:
    """One page of ``export_runs``: the runs, and the position to continue from (``after``).

    ``after`` is opaque to the caller (each store encodes its own order in it) and is what a checkpoint
    keeps. ``runs`` is empty only when the store has nothing after the position it was given."""

    runs: list[StoredRun]
    after: str | None


@dataclass(slots=True)
class Imported:
    """What ``import_runs`` did with a page: runs stored, and runs already there (left as they are)."""

    runs: int = 0
    steps: int = 0
    skipped: list[str] = field(default_factory=list)


class Transfer(Protocol):
    """Bulk export and import of stored runs, projects and keys, for `agenttracer copy`.

    Contracts every store keeps:

    * ``export_runs(after, limit)`` returns up to ``limit`` complete runs (steps ordered by seq) that
      come after the position ``after`` (None: from the first) in the store's natural order — the order
      its rows are kept in, so that a page and its steps are range reads: run_id on SQL (the primary
      key), the sorting key on ClickHouse (project, agent, start time, run_id) — and the position to
      continue from. The order is total and stable, so a caller that pages with the ``after`` it got
      back sees every run stored before the export began exactly once (keyset pagination, no offsets).
    * ``import_runs(runs)`` stores each run that the store does not hold yet, with its steps and
      failure, exactly as given (no verdict is recomputed). A run whose run_id is already stored, in
      any project, is left untouched and reported in ``Imported.skipped``: importing the same page
      twice stores nothing twice, which is what makes an interrupted copy safe to re-run. A page is
      stored all or nothing where the store has transactions; without them a page cut short is
      completed by importing it again.
    * ``runs_by_id(run_ids)`` returns the stored runs among ``run_ids`` (absent ones left out), by
      run_id: what a copy compares field by field.
    * ``counts()`` gives runs, steps and failures per project, exact (deduplicated).
    * ``export_access()`` / ``import_access(access)``: projects and keys; importing adds what is
      missing (by slug, by key_id) and changes nothing that exists.
    """

    def export_runs(self, after: str | None, limit: int) -> ExportedPage: ...

    def import_runs(self, runs: Sequence[StoredRun]) -> Imported: ...

    def runs_by_id(self, run_ids: Sequence[str]) -> list[StoredRun]: ...

    def counts(self) -> dict[str, StoredCounts]: ...

    def export_access(self) -> Access: ...

    def import_access(self, access: Access) -> None: ...
