"""The store interface: everything the apps, the background jobs and the CLI may ask of a store.

A store is opened from its URL with :func:`agenttracer.store.open_store` and implements :class:`Store`;
reads for the Query API go through a :class:`Reader` session (``store.reader(...)``), which can be
stopped from another thread when the request's deadline passes or its client leaves. Two packages
implement it: ``store/sql`` (SQLite and PostgreSQL) and ``store/clickhouse`` (a ClickHouse server or
the embedded engine). Nothing outside a backend's package sees its driver: errors are classified by
the store (``is_unavailable``, ``is_timeout``, ``cannot_write``), never by catching driver classes.

Contracts every implementation keeps (the suite runs the same tests against each):

* **Projects.** Every run belongs to one project; a read given ``projects`` (a sorted tuple of slugs)
  never sees a run outside them (None: every project — maintenance and tests only). A run id belongs
  to the project its first stored event named, for good.
* **Acknowledged means stored.** A write returns only once what it accepted is durable; a write that
  raises stored nothing (or, where the backend has no transactions, what it stored is exactly what a
  retry of the same batch makes whole — a retry is always safe).
* **Idempotence.** Writing the same events or spans again, split differently, interleaved with other
  writers or in any order, leaves the store as one write of their union would; the repeats are
  reported ``duplicate``. Outcomes follow the rules of ``store/run_state.py`` (SDK events) and
  ``store/otlp_assemble.py`` + ``agenttracer.verdict`` (OTLP spans).
* **Exact reads.** Counts are exact. A run's detail (``get_run``) reflects every acknowledged write
  (no duplicate row ever shows, even where the backend merges duplicates lazily). Percentiles are
  exact (``percentile_cont`` semantics: ``store/stats_math.py``) unless the result says otherwise
  (``RunStats.latency_exact`` False: from ``store/histogram.py``, within its ``RELATIVE_ERROR``).
* **Bounded work.** Every read is bounded by its arguments (page sizes, sample sizes of
  ``store/results.py`` and ``store/sql/read/compare.py``), never by how much is stored; every call on
  a ``Reader`` stops within a few milliseconds of ``cancel()`` or of its ``should_stop`` answering True.
* **Privacy.** A store never logs stored values or bound parameters; its errors name classes and
  codes, never a driver's message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from agenttracer.model import DEFAULT_PROJECT
from agenttracer.store.compare_result import Comparison
from agenttracer.store.cursors import Cursor
from agenttracer.store.filters import RunFilters
from agenttracer.store.keys import KeyInfo, Verification
from agenttracer.store.otlp_assemble import SpanRecord
from agenttracer.store.projects import ProjectInfo
from agenttracer.store.records import (
    Closed,
    Deleted,
    PruneResult,
    RefreshResult,
    SweepResult,
    WriteReport,
    Written,
)
from agenttracer.store.results import RunStats
from agenttracer.store.run_state import Incoming, Outcome
from agenttracer.store.transfer import Transfer

# A callable a long job polls between units of work: True asks it to stop after the unit in flight.
ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class OpenOptions:
    """How a store is opened (``open_store``'s keyword arguments, handed to the backend).

    ``readonly``: the Query API's store; every write is refused by the database itself where the backend
    can say so. ``statement_timeout_ms`` (0: none): the database's own bound on one statement's work; a
    statement stopped by it raises an error for which ``is_timeout`` is True. ``connections`` (None: the
    backend's default): exactly this many connections, never more and never a wait for one — the Query
    API sizes it to its read workers (``server/query/gate.py``).
    """

    readonly: bool = False
    statement_timeout_ms: int = 0
    connections: int | None = None


class Reader(Protocol):
    """One read session: what one Query API job reads, on one connection of the store's pool.

    Obtained from ``Store.reader()``; used by one thread at a time, except ``cancel``, which another
    thread may call at any moment. Every method raises the backend's errors (classify them with the
    store's ``is_unavailable`` / ``is_timeout``), or ``Stopped`` once ``cancel`` was called or
    ``should_stop`` answered True.
    """

    def list_runs(
        self, filters: RunFilters, *, limit: int, cursor: Cursor | None = None
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """Up to ``limit`` runs matching ``filters``, newest first on (started_at, run_id) — runs whose
        start is unknown after every dated run, by run_id — strictly after ``cursor``; plus the cursor
        after the page's last run, or None when no run follows. Keyset pagination: a page never shifts
        when runs arrive. Each run is a dict of the run columns (``wire.query.RunOut``'s fields)."""
        ...

    def runs_with_prefix(self, prefix: str, limit: int, projects: tuple[str, ...] | None = None) -> list[str]:
        """Up to ``limit`` run ids of ``projects`` beginning with ``prefix`` (lower case, canonical dashes),
        in id order."""
        ...

    def get_run(
        self, run_id: str, *, steps_after: int = 0, steps_limit: int, projects: tuple[str, ...] | None = None
    ) -> dict[str, Any] | None:
        """The run (its columns), one page of its steps in the run's order and its failure; None when
        there is no such run in ``projects``. Order: by seq for an SDK run, by (started_at, seq) for a run
        assembled from OTLP spans. ``steps_after``: the seq of the previous page's last step (0: from the
        start); at most ``steps_limit`` steps; ``next_steps_after`` the seq to pass for the next page or
        None after the last. The run's totals describe the whole run on every page. Exact: every
        acknowledged write shows, no duplicate ever does. Keys: those of ``wire.query.RunDetail``."""
        ...

    def list_agents(self, projects: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Every agent of ``projects`` with its versions and environments, exact run counts and last-seen
        times, newest first (``wire.query.AgentOut``'s fields); paged by ``store/agent_pages.py``."""
        ...

    def run_stats(self, filters: RunFilters, now: datetime | None = None) -> RunStats:
        """Everything ``GET /v1/stats`` reports for the runs matching ``filters`` (definitions:
        ``store/results.py``); ``now`` (default: the clock) ends an open-ended window."""
        ...

    def compare_versions(
        self,
        agent_id: str,
        base: str,
        candidate: str,
        environment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        projects: tuple[str, ...] | None = None,
    ) -> Comparison:
        """Both versions of ``agent_id`` side by side over the runs of ``projects``, with candidate − base
        deltas and significance verdicts (``store/compare_result.py``, tests in ``store/stats_math.py``)."""
        ...

    def list_projects(self, only: frozenset[str] | None = None) -> list[ProjectInfo]:
        """Every project (or those in ``only``), by slug."""
        ...

    def project_slugs(self) -> tuple[str, ...]:
        """Every project's slug, sorted: what a reader of every project (an admin key) reads."""
        ...

    def verify_key(self, key: str) -> Verification:
        """Look ``key`` up by its digest (``store/keys.py``: ``hash_key``), read afresh (never cached, so a
        revoked key fails on its next use); compare digests in constant time."""
        ...

    def any_key_exists(self) -> bool:
        """True once a key has ever been created, revoked ones included."""
        ...

    def ping(self) -> None:
        """Raise unless the database answers a trivial query through this session."""
        ...

    def cancel(self) -> None:
        """Stop the statement running in this session, from any thread, without waiting for it; the call
        running it then raises. Idempotent; a no-op when nothing runs. Never blocks the caller for longer
        than it takes to send a cancel request (bounded by a timeout of a few seconds)."""
        ...


class Stopped(Exception):
    """A read stopped because its session was cancelled or its ``should_stop`` answered True."""


class RollupProgress(Protocol):
    """The rollup refresher worker as the ingest metrics read it."""

    caught_up_at: float  # time.time() of the last pass that left nothing to fold in

    def stop(self, timeout: float = 10.0) -> None: ...


class RetentionProgress(Protocol):
    """The retention worker as the ingest metrics read it."""

    deleted: dict[str, int]  # rows deleted so far by this process, by table

    def stop(self, timeout: float = 10.0) -> None: ...


class SweepProgress(Protocol):
    """The abandoned-run sweep worker as the ingest metrics read it."""

    closed: int  # runs closed so far by this process
    on_closed: Callable[[list[Closed]], None] | None  # called after each pass that closed runs

    def stop(self, timeout: float = 10.0) -> None: ...


@dataclass
class Workers:
    """The background workers a store started in this process (None: not running)."""

    rollup: RollupProgress | None = None
    retention: RetentionProgress | None = None
    sweep: SweepProgress | None = None
    # What the store releases once the workers have stopped (their connections).
    closers: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop each worker after its unit of work in flight, then release what they held (idempotent)."""
        for worker in (self.rollup, self.retention, self.sweep):
            if worker is not None:
                worker.stop()
        closers, self.closers = self.closers, []
        for close in closers:
            close()


class Store(Protocol):
    """One opened store (see the module docstring for the contracts). Thread-safe: the apps call it
    from many worker threads at once. ``close()`` releases its connections; it is not used afterwards."""

    backend: str  # "sqlite", "postgresql" or "clickhouse": what /health reports

    # -- schema ------------------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest revision this code ships. Idempotent; safe to run while other
        processes serve the store (each revision is additive or runs in its own transaction)."""
        ...

    def current_revision(self) -> str | None:
        """The schema revision the store is at; None when it was never migrated."""
        ...

    # -- writes (the Ingest API) ----------------------------------------------------------------------

    def write_batch(
        self,
        events: Sequence[Incoming],
        *,
        now: datetime | None = None,
        report: WriteReport | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> list[Outcome]:
        """Store validated, scrubbed SDK ``events`` in ``project`` and return one Outcome per event, in
        input order: ``accepted``, ``duplicate`` (already stored: a replay changes nothing) or
        ``rejected`` with field and rule (a conflict with what is stored — ``store/run_state.py``'s rules
        — or a run of another project: ``records.FOREIGN_RUN_RULE``). Arrival order does not matter: a
        step before its run_start is kept, a run's counters (steps, errors, retries) are exact. ``now``
        stamps ingestion (default: the clock); ``report`` is filled in for the metrics. Raises the
        backend's error when the database cannot take the write; nothing was acknowledged then."""
        ...

    def write_spans(self, spans: Sequence[SpanRecord], now: datetime, *, project: str = DEFAULT_PROJECT) -> Written:
        """Store mapped OTLP spans (a trace is a run, run_id from the trace id) in ``project``: the span id
        is the idempotency key (a span stored again is a duplicate), a new span takes its run's next seq
        for good, parents and retry links are resolved as spans arrive in any order and split across
        requests (``store/otlp_assemble.py``), and the run's verdict is judged again by
        ``agenttracer.verdict`` whenever a span arrives. A span whose trace is another project's run, or
        an SDK run, is refused (counted in ``Written``). Raises like ``write_batch``."""
        ...

    def probe_write(self) -> None:
        """Raise the database's own error if it refuses writes right now (read-only, permissions, disk);
        stores nothing. Cheap: ``/health`` of the Ingest API calls it."""
        ...

    # -- reads ---------------------------------------------------------------------------------------

    def reader(self, should_stop: ShouldStop | None = None) -> AbstractContextManager[Reader]:
        """A read session on one connection, returned to the pool when the block exits. ``should_stop``
        (polled while a statement runs, where the backend can) stops the session's work once it answers
        True, as ``Reader.cancel`` does."""
        ...

    def ping(self) -> None:
        """Raise unless the database answers a trivial query (on a connection of its own)."""
        ...

    # -- error classification ------------------------------------------------------------------------

    unavailable_errors: tuple[type[Exception], ...]
    """Exception classes meaning "the database is not there right now" (a 503, not the request's fault);
    the apps register their 503 handler for each."""

    database_errors: tuple[type[Exception], ...]
    """Every exception class the backend's driver raises for a failed statement (the unavailable ones
    included)."""

    def is_unavailable(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the database is unreachable or overloaded (retry later)."""
        ...

    def is_timeout(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a statement stopped by ``OpenOptions.statement_timeout_ms``."""
        ...

    def cannot_write(self, exc: BaseException) -> bool:
        """Whether a failed write means "retry later" (unavailable, read-only, out of space) rather than a
        fault of the batch."""
        ...

    # -- keys and projects (the CLI; verification is on the Reader) -----------------------------------

    def create_key(
        self, scope: str, name: str | None = None, *, projects: Sequence[str] = (DEFAULT_PROJECT,),
        admin: bool = False,
    ) -> tuple[KeyInfo, str]:
        """A new key (``store/keys.py``: ``new_key`` makes it and checks the rules) bound to existing
        ``projects`` (ValueError naming a missing one), stored as its digest; returns its public record and
        the full key, shown once and never stored."""
        ...

    def list_keys(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        """Every key's public record, oldest first (by created_at, key_id)."""
        ...

    def revoke_key(self, key_id: str) -> bool:
        """Revoke ``key_id``; False when there is no such key. Revoking twice keeps the first time."""
        ...

    def create_project(self, slug: str, retention_days: int | None = None) -> ProjectInfo:
        """Make project ``slug``; ValueError when it is malformed (``projects.check_slug``), its retention
        is out of range or it exists already."""
        ...

    def set_retention(self, slug: str, retention_days: int | None) -> bool:
        """Set (None: clear) a project's own retention; False when there is no such project."""
        ...

    def delete_project(self, slug: str) -> Deleted | None:
        """Delete ``slug``: its runs with their steps and failures, its key bindings (keys left with no
        project are revoked) and its row; None when there is no such project. Other projects' writers wait
        at most one batch; an interrupted delete can be run again."""
        ...

    # -- jobs ----------------------------------------------------------------------------------------

    def prune(
        self,
        older_than: timedelta,
        *,
        batch_size: int | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
        should_stop: ShouldStop = lambda: False,
        project: str | None = None,
    ) -> PruneResult:
        """Delete runs (with their steps and failures) that started before ``now - older_than``, of
        ``project`` only when given, in batches of ``batch_size`` runs where the backend deletes in batches
        (None: its default); ``dry_run`` counts without deleting. Rollups stay
        consistent with what remains. Idempotent; stops between batches when ``should_stop``."""
        ...

    def sweep(
        self, timeout: timedelta, *, now: datetime | None = None, max_batches: int | None = None,
        should_stop: ShouldStop = lambda: False,
    ) -> SweepResult:
        """Close every running run with no event since ``now - timeout`` as ``failure`` /
        ``orchestration`` / ``abandoned`` (a later event reopens it: ``run_state.reopen_abandoned``).
        ``max_batches`` None: the backend's per-pass bound; ``sys.maxsize``: until none is left."""
        ...

    def refresh_rollups(
        self, *, settle: timedelta | None = None, rebuild: bool = False, now: datetime | None = None,
        should_stop: ShouldStop = lambda: False,
    ) -> RefreshResult:
        """Fold every closed hour (``settle`` after it ended; None: the backend's default) into the
        rollups the stats read; ``rebuild`` recomputes them from the raw rows. Idempotent; a backend whose
        rollups are maintained on insert returns at once with nothing to do."""
        ...

    def start_workers(
        self,
        *,
        retention_days: int | None,
        rollup_interval_s: float,
        rollup_settle_s: float,
        rollup_live_interval_s: float,
        run_timeout_s: int,
    ) -> Workers:
        """Start this process's background workers (the ingest process calls this once): retention, which
        prunes each project by its own retention, else by ``retention_days`` (None: keep those for ever) —
        always started, so a project given a retention later is pruned from the next pass on; the
        rollup refresher unless ``rollup_interval_s`` is 0, the abandoned-run sweep unless
        ``run_timeout_s`` is 0. Each worker survives failed passes (backing off) and logs no values."""
        ...

    def transfer(self) -> Transfer:
        """Bulk export and import of the stored runs, projects and keys (``agenttracer copy``; contracts in
        ``store/transfer.py``), on this store's connections."""
        ...

    def close(self) -> None:
        """Release every connection. Idempotent."""
        ...


# What a backend package provides: ``open_store(url, options) -> Store`` (registered in store/__init__.py).
Opener = Callable[[str, OpenOptions], Store]
