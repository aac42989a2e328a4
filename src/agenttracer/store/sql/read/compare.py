"""Content-free comparison of two versions of an agent, for ``GET /v1/compare``.

Everything is computed from the execution shape (statuses, latencies, step types, retries and
failure codes), never from content. Only *finished* runs of each version count (a running run has
no outcome yet), in the optional environment and ``[since, until)`` window on ``started_at``.
Deltas are candidate − base; each comes with a two-sided test from ``stats_math`` (rates: two-
proportion z-test; latencies and steps per run: Mann–Whitney U), whose verdict says
``insufficient_data`` when the sample is too small to tell.

Run *shape*: the step types of a run's top-level first attempts in ``seq`` order, e.g.
``plan > retrieval > tool > respond``. Retries (``attempt > 1`` or a ``retry_of_seq``) and nested
steps (with a ``parent_seq``) are left out, so a run whose tool call needed a retry has the same
shape as one that did not, and sub-steps do not multiply shapes; retry rate and per-step-type
numbers cover those.

To bound the work on large histories, the comparison reads the newest COMPARE_SAMPLE_RUNS finished
runs of each version in the window (every test stays valid on such a sample; each side reports how
many runs it compared and how many finished in the window). The sample's run rows are fetched once
(one select per version, stopping after COMPARE_SAMPLE_RUNS rows) and every run-level number is
computed from them in Python; the steps of the sample are read once, by primary key, in one
statement that aggregates them per step type and per run shape. ``bench/benchlib/explain_compare.py``
shows each statement with its plan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from agenttracer.model import RunStatus, StepStatus, StepType
from agenttracer.store.compare_assembly import (
    BASE,
    CANDIDATE,
    COMPARE_SAMPLE_RUNS,
    SampleRun,
    assemble,
    step_type_comparisons,
)
from agenttracer.store.compare_result import (
    Comparison,
    StepTypeComparison,
)
from agenttracer.store.filters import RunFilters
from agenttracer.store.results import Percentiles
from agenttracer.store.sql.dialect import is_postgres
from agenttracer.store.sql.expressions import count_if
from agenttracer.store.sql.read import stats_rollup
from agenttracer.store.sql.read.filters import run_conditions
from agenttracer.store.sql.read.sql import (
    Key,
    Members,
    bytewise,
    grouped_percentiles,
    percentiles_aggregate,
    rank_sum_parts,
    ranked,
    run_shapes_select,
    tune,
)
from agenttracer.store.sql.schema.tables import runs, steps
from agenttracer.store.stats_math import combine_rank_sums


def compare_versions(
    conn: sa.Connection,
    agent_id: str,
    base: str,
    candidate: str,
    environment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    projects: tuple[str, ...] | None = None,
) -> Comparison:
    """Both versions side by side with candidate − base deltas and significance verdicts, over the runs
    of ``projects`` (None: every project)."""
    if base == candidate:
        raise ValueError("candidate must differ from base")
    tune(conn)
    window = run_conditions(
        RunFilters(agent_id=agent_id, environment=environment, since=since, until=until, projects=projects)
    )
    versions = {BASE: base, CANDIDATE: candidate}
    counted = stats_rollup.version_counts(conn, agent_id, [base, candidate], environment, since, until, projects)
    if counted is not None:
        in_window = {gv: (counted[v].runs - counted[v].running, counted[v].running) for gv, v in versions.items()}
    else:
        in_window = _in_window(conn, window, versions)

    # The sample: each version's newest finished runs, fetched once with every run-level column the
    # comparison needs (at most 2 × COMPARE_SAMPLE_RUNS rows); the run-level numbers are computed
    # from these rows in Python, identically on both databases. One select per version (no IN over
    # both) lets PostgreSQL walk (agent_id, agent_version, started_at) backwards and stop early.
    newest = {
        gv: sa.select(*SAMPLE_COLUMNS)
        .where(*window, runs.c.agent_version == version, runs.c.status != RunStatus.RUNNING.value)
        .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        .limit(COMPARE_SAMPLE_RUNS)
        for gv, version in versions.items()
    }
    sample = {gv: [SampleRun(*row) for row in conn.execute(stmt)] for gv, stmt in newest.items()}
    ids_only = {gv: stmt.with_only_columns(runs.c.run_id) for gv, stmt in newest.items()}
    compared = Members(conn, list(ids_only.values()), [r.run_id for gv in versions for r in sample[gv]])
    is_candidate = Members(conn, [ids_only[CANDIDATE]], [r.run_id for r in sample[CANDIDATE]])
    # Step queries name the ids on steps.run_id, so the database looks them up by primary key, and
    # tell the versions apart by run id too: no join with runs.
    step_where = [compared.on(steps.c.run_id)]
    step_grp = sa.case((is_candidate.on(steps.c.run_id), CANDIDATE), else_=BASE)

    step_types, shapes = _steps(conn, step_where, step_grp)
    return assemble(agent_id, environment, since, until, versions, sample, in_window, step_types, shapes)


SAMPLE_COLUMNS = (
    runs.c.run_id, runs.c.status, runs.c.duration_ms, runs.c.step_count, runs.c.retry_count,
    runs.c.failure_type, runs.c.failure_code,
)


def _in_window(
    conn: sa.Connection, window: list[sa.ColumnElement[bool]], versions: dict[int, str]
) -> dict[int, tuple[int, int]]:
    """(finished, running) runs of each version in the window.

    Counted as all runs minus the running ones: all runs is an index-only count on (agent_id,
    agent_version, started_at), where counting by status would read every run's row; running runs
    are few, and the (status, started_at) index finds them.
    """
    group = {version: gv for gv, version in versions.items()}
    stmt = (
        sa.select(runs.c.agent_version, sa.func.count())
        .where(*window, runs.c.agent_version.in_(list(group)))
        .group_by(runs.c.agent_version)
    )
    total = {group[v]: int(n) for v, n in conn.execute(stmt)}
    running = {group[v]: int(n) for v, n in conn.execute(stmt.where(runs.c.status == RunStatus.RUNNING.value))}
    return {gv: (n - running.get(gv, 0), running.get(gv, 0)) for gv, n in total.items()}


def _steps(
    conn: sa.Connection, where: list[sa.ColumnElement[bool]], grp: sa.ColumnElement[Any]
) -> tuple[list[StepTypeComparison], dict[Key, int]]:
    """Per step type numbers and run shapes, from one read of the compared runs' steps.

    One statement: the steps are read once into a CTE (PostgreSQL materialises a CTE used twice),
    then aggregated two ways and returned as one UNION ALL, rows told apart by ``kind``.
    """
    # The step type as its index in StepType (ingest accepts no other value): the window and the
    # grouping then sort small integers, not text (~40 % of the per-type aggregation's time).
    code = sa.case({t.value: i for i, t in enumerate(StepType)}, value=steps.c.step_type, else_=len(StepType))
    counted = sa.and_(steps.c.attempt == 1, steps.c.retry_of_seq.is_(None), steps.c.parent_seq.is_(None))
    read = sa.select(
        grp.label("grp"), code.label("code"), steps.c.step_type, steps.c.latency_ms, steps.c.status,
        bytewise(conn, steps.c.run_id).label("run_id"), steps.c.seq, counted.label("counted"),
    ).where(*where).cte("compared_steps")
    src = sa.select(read.c.grp, read.c.code.label("k0"), read.c.step_type, read.c.latency_ms.label("v"),
                    read.c.status).subquery()
    rk = ranked(src)
    postgres = is_postgres(conn)
    per_type = sa.select(
        sa.literal(0).label("kind"), rk.c.grp, sa.func.min(rk.c.step_type).label("label"), sa.func.count().label("n"),
        count_if(rk.c.status == StepStatus.ERROR.value).label("errors"),
        *[c.label(f"rs{i}") for i, c in enumerate(rank_sum_parts(rk))],
        *([percentiles_aggregate(rk.c.v).label("ps")] if postgres else []),
    ).group_by(rk.c.k0, rk.c.grp)  # k0 first: the rows come out of the window sorted by step type already
    shape_src = sa.select(read.c.grp.label("k0"), read.c.run_id, read.c.seq, read.c.step_type).where(
        read.c.counted
    ).subquery()
    shape_rows = run_shapes_select(conn, shape_src).subquery()
    pad: list[sa.ColumnElement[Any]] = [sa.null(), sa.null(), sa.null(), sa.null()]
    if postgres:
        pad.append(sa.cast(sa.null(), postgresql.ARRAY(sa.Float())))
    shapes_part = sa.select(sa.literal(1), *shape_rows.c, *pad)
    type_rows, shapes = [], {}
    for row in conn.execute(sa.union_all(per_type, shapes_part)):
        if row[0] == 0:
            type_rows.append(row[1:])
        else:
            shapes[(int(row[1]), row[2])] = int(row[3])
    pcts: dict[Key, Percentiles]
    if postgres:
        pcts = {(int(r[0]), r[1]): Percentiles.of(r[-1]) for r in type_rows if r[-1] is not None}
    else:
        latencies = sa.select(grp.label("k0"), steps.c.step_type.label("k1"), steps.c.latency_ms.label("v"))
        pcts = {(int(k[0]), k[1]): p for k, p in grouped_percentiles(conn, latencies.where(*where).subquery()).items()}
    counts: dict[str, list[int]] = {}
    parts: dict[Key, tuple[Any, ...]] = {}
    for r in type_rows:
        gv, step_type, n, errors = int(r[0]), r[1], int(r[2]), int(r[3])
        c = counts.setdefault(step_type, [0, 0, 0, 0])
        c[gv] += n
        c[2 + gv] += errors
        parts[(gv, step_type)] = tuple(r[4:7])
    sums = {t: combine_rank_sums(parts.get((BASE, t)), parts.get((CANDIDATE, t))) for t in counts}
    return step_type_comparisons(counts, sums, pcts), shapes


