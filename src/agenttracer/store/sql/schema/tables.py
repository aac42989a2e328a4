"""The database schema, in one place: runs, steps, failures and API keys (SQLAlchemy Core).

Every string column is a bounded VARCHAR sized from the limits in ``agenttracer.model``: there is no
unbounded TEXT column that could hold prompts or outputs. Metadata is a small JSON object of scalars
(JSONB on PostgreSQL) that has already passed the privacy policy.

The Alembic migrations in ``store/sql/schema/migrations`` create the same tables without importing this module;
``tests/store`` checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from agenttracer.model import (
    MAX_CODE_LEN,
    MAX_ENVIRONMENT_LEN,
    MAX_ERROR_CLASS_LEN,
    MAX_ID_LEN,
    MAX_MESSAGE_LEN,
    MAX_NAME_LEN,
    MAX_PROJECT_LEN,
    MAX_VERSION_LEN,
)
from agenttracer.store.sql.dialect import POSTGRESQL, SQLITE, stores_naive_utc

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

RUN_ID_LEN = 36  # canonical UUID text
SPAN_ID_LEN = 16  # an OTLP span id in hexadecimal
# runs.source: the write path that created a run, and the only one that may write to it.
SOURCE_SDK, SOURCE_OTLP = "sdk", "otlp"
RUN_SOURCES = (SOURCE_SDK, SOURCE_OTLP)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that is always UTC: aware datetimes in, aware UTC datetimes out.

    PostgreSQL stores TIMESTAMP WITH TIME ZONE; SQLite stores naive UTC text, which sorts correctly.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: AgentTracer stores UTC timestamps only")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if stores_naive_utc(dialect) else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


_OTLP_STEP = "span_id IS NOT NULL"
# The steps a run's verdict reads (agenttracer.verdict.judge): errors and retries.
VERDICT_STEP = "status = 'error' OR retry_of_seq IS NOT NULL OR attempt > 1"


def _otlp_index(*columns: str, where: str) -> list[sa.Index]:
    return [sa.Index(None, *columns, postgresql_where=sa.text(where), sqlite_where=sa.text(where))]


def _json() -> Any:
    return sa.JSON().with_variant(postgresql.JSONB(), POSTGRESQL)


runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(RUN_ID_LEN), primary_key=True),
    # The project the run belongs to, fixed by the write that created its row (migration 0005).
    sa.Column("project", sa.String(MAX_PROJECT_LEN), nullable=False, server_default="default"),
    # Identity is nullable only for placeholder rows made by a step that arrived before run_start.
    sa.Column("agent_id", sa.String(MAX_ID_LEN)),
    sa.Column("agent_version", sa.String(MAX_VERSION_LEN)),
    sa.Column("environment", sa.String(MAX_ENVIRONMENT_LEN)),
    sa.Column("status", sa.String(16), nullable=False, server_default="running"),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("ended_at", UTCDateTime()),
    sa.Column("duration_ms", sa.Float()),
    # Denormalised from steps/failures so that lists and filters need no join; the writer keeps them
    # exact under replays and out-of-order arrival.
    sa.Column("step_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("error_step_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("retry_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("failure_type", sa.String(32)),
    sa.Column("failure_code", sa.String(MAX_CODE_LEN)),
    sa.Column("meta", _json(), nullable=False, server_default="{}"),
    sa.Column("meta_removed", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("ingested_at", UTCDateTime(), nullable=False),
    # When the server last stored a new event of the run (its clock, not the agent's): the abandonment
    # sweep (store/sql/write/abandon.py) closes running runs whose last write is older than the timeout.
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # OTLP runs: the trace's root span (the run itself) and its failure code when it ended in error;
    # what a late span needs to re-judge a settled run (store/sql/write/otlp_write.py). NULL for SDK runs.
    sa.Column("root_span_id", sa.String(SPAN_ID_LEN)),
    sa.Column("root_error", sa.String(MAX_CODE_LEN)),
    # Which write path created the run (RUN_SOURCES); the other one's events are refused for it.
    sa.Column("source", sa.String(8), nullable=False, server_default="sdk"),
    # True while the run's failure verdict is the sweep's, so a late event can tell it from a real end.
    sa.Column("abandoned", sa.Boolean(), nullable=False, server_default=sa.false()),
    # Time order across projects: the rollup refresher, the sweep and retention walk it.
    sa.Index(None, "started_at", "run_id"),
    # Every read is inside a set of projects, so the list indexes start with the project: one project's
    # runs are read without walking another's (migration 0005). They end in run_id, which gives the runs
    # list its full order (migration 0003).
    sa.Index(None, "project", "started_at", "run_id"),
    sa.Index(None, "project", "agent_id", "started_at", "run_id"),
    sa.Index(None, "project", "agent_id", "agent_version", "started_at", "run_id"),
    sa.Index(None, "project", "status", "started_at", "run_id"),
    sa.Index(None, "project", "failure_type", "failure_code"),
    # The sweep's candidates in the order it takes them; only running runs are in it (migration 0008).
    sa.Index(
        None,
        "updated_at",
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    ),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("run_id", sa.String(RUN_ID_LEN), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("step_type", sa.String(16), nullable=False),
    sa.Column("name", sa.String(MAX_NAME_LEN), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=False),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("retry_of_seq", sa.Integer()),
    sa.Column("parent_seq", sa.Integer()),
    sa.Column("error_class", sa.String(MAX_ERROR_CLASS_LEN)),
    sa.Column("failure_code", sa.String(MAX_CODE_LEN)),
    sa.Column("meta", _json(), nullable=False, server_default="{}"),
    sa.Column("meta_removed", sa.Integer(), nullable=False, server_default="0"),
    # Steps that came from OTLP spans (POST /v1/traces) keep their span ids: the span id is their
    # identity (the same span sent twice is stored once), seq is derived from start order. NULL for
    # SDK steps, which the partial index therefore does not cover (migration 0004).
    sa.Column("span_id", sa.String(SPAN_ID_LEN)),
    sa.Column("parent_span_id", sa.String(SPAN_ID_LEN)),
    sa.Index(None, "name", "run_id"),
    sa.Index(None, "step_type", "started_at"),
    sa.Index(
        None,
        "run_id",
        "span_id",
        unique=True,
        postgresql_where=sa.text("span_id IS NOT NULL"),
        sqlite_where=sa.text("span_id IS NOT NULL"),
    ),
    # OTLP steps only (migration 0007): a span's seq is kept from its arrival, so these give the run
    # detail its start-time order and the assembler its lookups (docs/otlp.md).
    *_otlp_index("run_id", "started_at", "seq", where=_OTLP_STEP),
    *_otlp_index("run_id", "name", "ended_at", where=_OTLP_STEP),
    *_otlp_index("run_id", "parent_span_id", where="parent_seq IS NULL AND parent_span_id IS NOT NULL"),
    *_otlp_index("run_id", "seq", where=f"{_OTLP_STEP} AND ({VERDICT_STEP})"),
)

failures = sa.Table(
    "failures",
    metadata,
    sa.Column("run_id", sa.String(RUN_ID_LEN), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("failure_type", sa.String(32), nullable=False),
    sa.Column("failure_code", sa.String(MAX_CODE_LEN), nullable=False),
    sa.Column("step_seq", sa.Integer()),
    sa.Column("message", sa.String(MAX_MESSAGE_LEN)),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)

# Projects that exist: made by `agenttracer projects create`, or by the first write naming a project
# when keys are off. ``retention_days`` NULL: the deployment's AGENTTRACER_RETENTION_DAYS applies.
projects = sa.Table(
    "projects",
    metadata,
    sa.Column("slug", sa.String(MAX_PROJECT_LEN), primary_key=True),
    sa.Column("retention_days", sa.Integer()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),
    # A read key of every project; never an ingest key (an ingest key's one project decides its runs).
    sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("last4", sa.String(4), nullable=False),
    sa.Column("name", sa.String(64)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
)

# The projects a key is bound to: exactly one for an ingest key, one or more for a read key that is not
# admin. No foreign key to projects: deleting a project removes its rows here in the same transaction.
api_key_projects = sa.Table(
    "api_key_projects",
    metadata,
    sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.key_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("project", sa.String(MAX_PROJECT_LEN), primary_key=True),
)

# --- Rollups (store/sql/rollup/build.py): hourly and daily aggregates that /v1/stats and /v1/agents read instead
# of scanning millions of runs. Only the rollup refresher writes them; each row is a pure function of the
# raw tables for its time bucket. ``level`` says which identity columns the row keeps (ROLLUP_AGENT |
# ROLLUP_VERSION | ROLLUP_ENVIRONMENT bits); the others hold ''. A run without identity yet (a
# placeholder) has '' in all three. Histograms (store/histogram.py) are JSON arrays of integers that the
# refresher computes from latencies: they never hold text from a request.

ROLLUP_GRAIN_LEN = 4  # 'hour' | 'day' | 'min' | '10s' (store/sql/rollup/build.py)


def _rollup_key() -> list[sa.Column[Any]]:
    return [
        # Key order: every read is inside a set of projects, then fixes grain and level and scans a time
        # range, so one project's rows are read without walking another's; the refresher replaces whole
        # buckets.
        sa.Column("project", sa.String(MAX_PROJECT_LEN), primary_key=True),
        sa.Column("grain", sa.String(ROLLUP_GRAIN_LEN), primary_key=True),
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("bucket_start", UTCDateTime(), primary_key=True),
        sa.Column("agent_id", sa.String(MAX_ID_LEN), primary_key=True),
        sa.Column("agent_version", sa.String(MAX_VERSION_LEN), primary_key=True),
        sa.Column("environment", sa.String(MAX_ENVIRONMENT_LEN), primary_key=True),
    ]


rollup_runs = sa.Table(
    "rollup_runs",
    metadata,
    *_rollup_key(),
    sa.Column("runs", sa.Integer(), nullable=False),
    sa.Column("running", sa.Integer(), nullable=False),
    sa.Column("success", sa.Integer(), nullable=False),
    sa.Column("failure", sa.Integer(), nullable=False),
    sa.Column("partial", sa.Integer(), nullable=False),
    sa.Column("steps", sa.BigInteger(), nullable=False),
    sa.Column("retry_steps", sa.BigInteger(), nullable=False),
    sa.Column("runs_with_retries", sa.Integer(), nullable=False),
    sa.Column("run_time_ms", sa.Float(), nullable=False),  # summed duration of finished runs
    sa.Column("last_started_at", UTCDateTime(), nullable=False),
    sa.Column("duration_hist", sa.JSON(), nullable=False),  # durations of finished runs
    sa.Index(None, "grain", "bucket_start"),  # the refreshers replace buckets across projects
)

rollup_failures = sa.Table(
    "rollup_failures",
    metadata,
    *_rollup_key(),
    sa.Column("failure_type", sa.String(32), primary_key=True),
    sa.Column("failure_code", sa.String(MAX_CODE_LEN), primary_key=True),
    sa.Column("runs", sa.Integer(), nullable=False),
    sa.Index(None, "grain", "bucket_start"),
)

rollup_steps = sa.Table(
    "rollup_steps",
    metadata,
    *_rollup_key(),
    sa.Column("step_type", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(MAX_NAME_LEN), primary_key=True),
    sa.Column("steps", sa.Integer(), nullable=False),
    sa.Column("errors", sa.Integer(), nullable=False),
    sa.Column("retries", sa.Integer(), nullable=False),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("retry_latency_ms", sa.Float(), nullable=False),
    # Self time of the steps in finished runs (store/self_time.py): what shares of run time add up.
    sa.Column("self_ms", sa.Float(), nullable=False, server_default="0"),
    sa.Column("latency_hist", sa.JSON(), nullable=False),
    sa.Index(None, "grain", "bucket_start"),
)

# Stored self time (store/sql/rollup/attribution.py): per finished run and (step_type, name), the summed self
# time of its steps (store/self_time.py), written by the rollup refreshers so that stats and rollups
# sum it in SQL instead of walking each run's steps. The ``run_*`` columns are what it was computed from:
# the run's step count (steps are only ever added) and its two ends. A row counts only while they equal the
# run's, so a late step or a moved end makes the run's rows stale until the next refresh recomputes them.
step_self_time = sa.Table(
    "step_self_time",
    metadata,
    sa.Column("run_id", sa.String(RUN_ID_LEN), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("step_type", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(MAX_NAME_LEN), primary_key=True),
    sa.Column("self_ms", sa.Float(), nullable=False),
    sa.Column("run_steps", sa.Integer(), nullable=False),
    sa.Column("run_started_at", UTCDateTime(), nullable=False),
    sa.Column("run_ended_at", UTCDateTime(), nullable=False),
)

# One row per (write transaction, touched hour): the writer appends, the refresher deletes the rows it
# has folded in. Appending (no upsert of a per-hour counter) keeps concurrent ingest batches from
# queueing on one hot row.
rollup_dirty = sa.Table(
    "rollup_dirty",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), SQLITE), primary_key=True, autoincrement=True),
    sa.Column("hour", UTCDateTime(), nullable=False),
    sa.Index(None, "hour"),
)

# A single row: every hour before rolled_until has been rolled up (unless it has a rollup_dirty row).
rollup_state = sa.Table(
    "rollup_state",
    metadata,
    sa.Column("id", sa.SmallInteger(), primary_key=True, autoincrement=False),
    sa.Column("rolled_until", UTCDateTime()),
)
