"""Rollups: what one hour (or day) of runs adds up to, computed from the raw tables or read back.

The rollup tables (``store/sql/schema/tables.py``) hold, per time bucket and identity, the numbers ``GET
/v1/stats`` and ``GET /v1/agents`` need: run counts per status, summed steps / retries / run time,
failure counts, per-step counts and latency sums, and mergeable latency histograms
(``store/histogram.py``). This module is the one definition of those numbers:

* ``aggregate_raw`` computes them from ``runs`` / ``steps`` for any set of run conditions, grouped by
  caller-chosen keys — the refresher (``store/sql/rollup/refresh.py``) calls it for one hour grouped by
  identity, stats call it for the parts of a window that are not rolled up;
* ``read_rollup`` sums stored rollup rows into the same shapes.

Every row belongs to one project (the first key column): rows are computed and read per project, and
a reader names the projects it may see (``read_rollup``'s ``projects``).

Identity levels: a row keeps some of (agent_id, agent_version, environment) and has '' in the others,
so that a query filtered on an agent reads one row per bucket and step name instead of one per
(version, environment). ``LEVELS`` lists the combinations stored; ``level_for`` picks the one a filter
needs (a version or environment filter without an agent reads the full-identity level).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from agenttracer.model import RunStatus, StepStatus
from agenttracer.store.agent_pages import later_of
from agenttracer.store.histogram import BOUNDS, bucket_of
from agenttracer.store.sql.dialect import as_utc, is_postgres
from agenttracer.store.sql.expressions import count_if
from agenttracer.store.sql.rollup.aggregates import Aggregates, Key, RunAgg, StepAgg
from agenttracer.store.sql.rollup.attribution import self_time_sums
from agenttracer.store.sql.rollup.selftime import stream_rows
from agenttracer.store.sql.schema.tables import rollup_failures, rollup_runs, rollup_steps, runs, steps

# Bucket grains: hourly and daily rows (store/sql/rollup/refresh.py) and, for the live region between
# rolled_until and now, minute and 10-second rows (store/sql/rollup/live.py).
TEN_S_GRAIN, MINUTE_GRAIN = "10s", "min"
FINE_GRAINS = (TEN_S_GRAIN, MINUTE_GRAIN)

AGENT, VERSION, ENVIRONMENT = 1, 2, 4
FULL = AGENT | VERSION | ENVIRONMENT
# Cheapest first: level_for returns the first one that keeps every filtered column.
LEVELS = (0, AGENT, ENVIRONMENT, AGENT | ENVIRONMENT, AGENT | VERSION, FULL)
IDENTITY_COLUMNS = ("agent_id", "agent_version", "environment")
_BITS = (AGENT, VERSION, ENVIRONMENT)



def level_for(agent_id: str | None, agent_version: str | None, environment: str | None) -> int:
    """The cheapest stored level that can answer a filter on these identity columns."""
    wanted = (AGENT if agent_id is not None else 0) | (VERSION if agent_version is not None else 0)
    wanted |= ENVIRONMENT if environment is not None else 0
    return next(level for level in LEVELS if wanted & ~level == 0)


def project(level: int, key: Sequence[str]) -> tuple[str, str, str, str]:
    """A (project, agent, version, environment) key as stored at ``level``: the project is always kept,
    the identity columns the level drops become ''."""
    a, v, e = (value if level & bit else "" for bit, value in zip(_BITS, key[1:], strict=True))
    return key[0], a, v, e


def identity_keys() -> list[sa.ColumnElement[Any]]:
    """The runs' identity as grouping keys, '' for a placeholder run that has none yet."""
    return [sa.func.coalesce(runs.c[name], "") for name in IDENTITY_COLUMNS]


def rollup_keys() -> list[sa.ColumnElement[Any]]:
    """What a stored rollup row is keyed by besides its bucket: the project, then the identity."""
    return [runs.c.project, *identity_keys()]


def in_projects(column: sa.ColumnElement[str], projects: Sequence[str] | None) -> list[sa.ColumnElement[bool]]:
    """The condition keeping a read inside ``projects`` (None: every project, for maintenance and tests)."""
    return [] if projects is None else [column.in_(list(projects))]


def _bucket_expr(conn: sa.Connection, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    # width_bucket over the very bounds Python bisects: the same bucket for the same double.
    return sa.func.width_bucket(value, sa.literal(list(BOUNDS), type_=postgresql.ARRAY(sa.Float())))


def _key_of(row: Sequence[Any], n: int, convert: Sequence[bool]) -> Key:
    return tuple(as_utc(v) if conv and v is not None else v for v, conv in zip(row[:n], convert, strict=True))


# Up to this many steps (as the runs' step counts say), PostgreSQL hands each group's latencies to Python as
# one array and Python buckets them; above it, PostgreSQL buckets them with width_bucket and groups by bucket.
# Both give the same histogram (tests/store/test_histogram.py); the array is the cheaper one for the few
# thousand steps of a window's partial edge hours (the grouping by bucket cost more than the join), the
# grouped form keeps memory bounded for a large raw part.
STEP_ARRAY_MAX = 200_000


def aggregate_raw(
    conn: sa.Connection,
    where: list[sa.ColumnElement[bool]],
    run_keys: list[sa.ColumnElement[Any]],
    step_keys: list[sa.ColumnElement[Any]],
    *,
    time_keys: tuple[bool, ...] = (),
    step_time_keys: tuple[bool, ...] = (),
    with_steps: bool = True,
    step_where: list[sa.ColumnElement[bool]] | None = None,
) -> Aggregates:
    """Rollup numbers of the runs matching ``where`` (conditions on ``runs``), grouped by key expressions.

    ``time_keys`` / ``step_time_keys`` flag the keys that are time buckets (returned as aware UTC).
    ``step_where`` takes the steps of other runs than ``where`` (by default the same).
    Two statements on PostgreSQL (runs, steps), three on SQLite (its run durations are fetched as rows).
    """
    out = Aggregates()
    pg = is_postgres(conn)
    rconv = time_keys or tuple(False for _ in run_keys)
    sconv = step_time_keys or tuple(False for _ in step_keys)
    nk = len(run_keys)
    finished = runs.c.status != RunStatus.RUNNING.value
    duration = runs.c.duration_ms
    timed = sa.and_(finished, duration.is_not(None))
    # Grouped by failure too, so that one statement counts runs and failures: no failure_type condition
    # for the planner to BitmapAnd with the time range (that cost more than the few extra groups).
    columns = [
        *run_keys,
        runs.c.failure_type,
        runs.c.failure_code,
        sa.func.count(),
        *[count_if(runs.c.status == s.value) for s in RunStatus],
        sa.func.coalesce(sa.func.sum(runs.c.step_count), 0),
        sa.func.coalesce(sa.func.sum(runs.c.retry_count), 0),
        count_if(runs.c.retry_count > 0),
        sa.func.coalesce(sa.func.sum(sa.case((finished, duration), else_=None)), 0.0),
        sa.func.max(runs.c.started_at),
    ]
    if pg:
        columns.append(sa.func.array_agg(duration).filter(timed))
    counters = conn.execute(
        sa.select(*columns).where(*where).group_by(*run_keys, runs.c.failure_type, runs.c.failure_code)
    )
    keys: dict[tuple[Any, ...], Key] = {}  # raw key -> converted key: a time key is converted once
    total_steps = 0
    for row in counters:
        raw_key = tuple(row[:nk])
        key = keys.get(raw_key)
        if key is None:
            key = keys[raw_key] = _key_of(row, nk, rconv)
        failure_type, failure_code, n, running, success, failure, partial, n_steps, retries, retried, run_time, \
            last = row[nk:nk + 12]
        agg = RunAgg(
            int(n), int(running), int(success), int(failure), int(partial), int(n_steps), int(retries),
            int(retried), float(run_time), as_utc(last) if last is not None else None,
        )
        total_steps += agg.steps
        if pg and row[nk + 12]:
            agg.hist.add_values(row[nk + 12])
        found = out.runs.get(key)
        if found is None:
            out.runs[key] = agg
        else:
            found.add(agg)
        if failure_type is not None:
            fkey = (*key, failure_type, failure_code or "")
            out.failures[fkey] = out.failures.get(fkey, 0) + int(n)
    if not pg:
        for row in conn.execute(sa.select(*run_keys, duration).where(*where, timed)):
            out.runs[_key_of(row, nk, rconv)].hist.add_value(float(row[nk]))

    if with_steps and out.runs:
        _aggregate_steps(conn, where if step_where is None else step_where, step_keys, sconv, out,
                         total_steps=total_steps)
    return out


def step_aggregates() -> list[sa.ColumnElement[Any]]:
    """The per-step numbers of a group of steps, in this order: steps, error steps, retry steps (attempt > 1),
    summed latency, summed latency of retries. The one definition, used here for the rollups and by the
    exact per-step stats (``store/sql/read/steps.py``); self time comes from ``attribution.self_time_sums``."""
    retry = steps.c.attempt > 1
    return [
        sa.func.count(),
        count_if(steps.c.status == StepStatus.ERROR.value),
        count_if(retry),
        sa.func.sum(steps.c.latency_ms),
        sa.func.coalesce(sa.func.sum(sa.case((retry, steps.c.latency_ms), else_=0.0)), 0.0),
    ]


def _aggregate_steps(
    conn: sa.Connection,
    where: list[sa.ColumnElement[bool]],
    step_keys: list[sa.ColumnElement[Any]],
    convert: tuple[bool, ...],
    out: Aggregates,
    *,
    total_steps: int,
) -> None:
    as_arrays = total_steps <= STEP_ARRAY_MAX
    nk = len(step_keys) + 2
    keys = [*step_keys, steps.c.step_type, steps.c.name]
    source = steps.join(runs, steps.c.run_id == runs.c.run_id)
    aggregates = step_aggregates()
    conv = (*convert, False, False)

    def agg_for(row: Sequence[Any]) -> StepAgg:
        key = _key_of(row, nk, conv)
        found = out.steps.get(key)
        if found is None:
            found = out.steps[key] = StepAgg()
        return found

    if is_postgres(conn):
        # One pass: each group's latencies as one array (bucketed here), or grouped by bucket too and
        # the counters summed over a group's buckets here.
        b = sa.func.array_agg(steps.c.latency_ms) if as_arrays else _bucket_expr(conn, steps.c.latency_ms)
        group = keys if as_arrays else [*keys, b]
        grouped = conn.execute(sa.select(*keys, b, *aggregates).select_from(source).where(*where).group_by(*group))
        for row in grouped:
            agg = agg_for(row)
            bucket, n, errors, retries, latency, retry_latency = row[nk:]
            if as_arrays:
                agg.hist.add_values(bucket)
            else:
                agg.hist.add_bucket(int(bucket), int(n))
            agg.steps += int(n)
            agg.errors += int(errors)
            agg.retries += int(retries)
            agg.latency_ms += float(latency)
            agg.retry_latency_ms += float(retry_latency)
    else:
        # Bucketed here: SQLite has no width_bucket, and one scan of the rows gives every counter.
        query = sa.select(*keys, steps.c.latency_ms, steps.c.status, steps.c.attempt).select_from(source).where(*where)
        for chunk in stream_rows(conn, query, total_steps):
            _add_step_rows(chunk, nk, agg_for)
    for key, ms in self_time_sums(conn, where, step_keys).items():
        agg_for(key).self_ms += ms


def _add_step_rows(rows: Iterable[Sequence[Any]], nk: int, agg_for: Callable[[Sequence[Any]], StepAgg]) -> None:
    error = StepStatus.ERROR.value
    for row in rows:
        agg = agg_for(row)
        latency, status, attempt = row[nk:nk + 3]
        agg.hist.add_bucket(bucket_of(latency), 1)
        agg.steps += 1
        agg.errors += status == error
        agg.latency_ms += latency
        if attempt > 1:
            agg.retries += 1
            agg.retry_latency_ms += latency


# --- reading stored rollups ----------------------------------------------------------------------


def _doc(text: Any) -> Sequence[int]:
    if text is None:
        return ()
    if isinstance(text, (bytes, str)):
        doc: Sequence[int] = orjson.loads(text)
        return doc
    return text


def _identity_where(
    table: sa.Table, level: int, identity: Sequence[str | None], projects: Sequence[str] | None
) -> list[sa.ColumnElement[bool]]:
    conds = [*in_projects(table.c.project, projects), table.c.level == level]
    for name, value in zip(IDENTITY_COLUMNS, identity, strict=True):
        if value is not None:
            conds.append(table.c[name] == value)
    return conds


def read_rollup(
    conn: sa.Connection,
    spans: list[tuple[str, datetime, datetime]],
    level: int,
    identity: Sequence[str | None],
    *,
    by_identity: bool = False,
    with_steps: bool = True,
    with_hist: bool = True,
    projects: Sequence[str] | None = None,
) -> Aggregates:
    """Sum stored rollup rows of ``level`` whose bucket starts in one of ``spans`` ((grain, from, to)).

    Runs are keyed by (grain, bucket_start) — or by the stored identity with ``by_identity`` — failures
    by (type, code), steps by (type, name), summed over ``projects`` (None: all); ``identity`` filters
    (None: any). ``with_hist=False`` leaves
    the run histograms empty (for callers that only count).
    """
    out = Aggregates()
    if not spans:
        return out

    def in_spans(table: sa.Table) -> sa.ColumnElement[bool]:
        return sa.or_(*[
            sa.and_(table.c.grain == grain, table.c.bucket_start >= lo, table.c.bucket_start < hi)
            for grain, lo, hi in spans
        ])

    r = rollup_runs
    run_cols = [r.c[name] for name in RunAgg.COUNTERS]
    keys = [r.c.agent_id, r.c.agent_version, r.c.environment] if by_identity else [r.c.grain, r.c.bucket_start]
    hist = sa.cast(r.c.duration_hist, sa.Text) if with_hist else sa.null()
    query = sa.select(*keys, *run_cols, r.c.last_started_at, hist).where(
        in_spans(r), *_identity_where(r, level, identity, projects)
    )
    for row in conn.execute(query):
        key = tuple(row[:3]) if by_identity else (row[0], as_utc(row[1]))
        agg = out.runs.get(key)
        if agg is None:
            agg = out.runs[key] = RunAgg()
        # Spelled out (RunAgg.COUNTERS' order): this runs for every stored row a stats answer reads.
        n, running, success, failure, partial, n_steps, retry_steps, retried, run_time, last, doc = row[len(keys):]
        agg.runs += n
        agg.running += running
        agg.success += success
        agg.failure += failure
        agg.partial += partial
        agg.steps += n_steps
        agg.retry_steps += retry_steps
        agg.runs_with_retries += retried
        agg.run_time_ms += run_time
        agg.last_started_at = later_of(agg.last_started_at, as_utc(last))
        if doc is not None:
            agg.hist.add_doc(_doc(doc))
    if not with_steps:
        return out
    f = rollup_failures
    failure_rows = conn.execute(
        sa.select(f.c.failure_type, f.c.failure_code, sa.func.sum(f.c.runs))
        .where(in_spans(f), *_identity_where(f, level, identity, projects))
        .group_by(f.c.failure_type, f.c.failure_code)
    )
    for failure_type, failure_code, n in failure_rows:
        out.failures[(failure_type, failure_code)] = int(n)
    s = rollup_steps
    step_cols = [s.c[name] for name in StepAgg.COUNTERS]
    step_rows = conn.execute(
        sa.select(s.c.step_type, s.c.name, *step_cols, sa.cast(s.c.latency_hist, sa.Text)).where(
            in_spans(s), *_identity_where(s, level, identity, projects)
        )
    )
    for row in step_rows:
        key = (row[0], row[1])
        values: Sequence[Any] = row[2:]
        n, errors, retries, latency, retry_latency, self_ms, doc = values
        step = out.steps.get(key)
        if step is None:
            step = out.steps[key] = StepAgg()
        step.steps += n
        step.errors += errors
        step.retries += retries
        step.latency_ms += latency
        step.retry_latency_ms += retry_latency
        step.self_ms += self_ms
        step.hist.add_doc(_doc(doc))
    return out
