"""Step rollups: per (project, agent, version, environment, hour, step type, name) the numbers the per-step
part of ``GET /v1/stats`` needs, and the self time of each finished run stored once.

Frozen history: a later change is a new migration, never an edit here.

``rollup_steps`` is recomputed with ``rollup_runs`` (v0002), unit by unit — (project, agent_id, hour of the
run's start) — by the refresher (store/clickhouse/rollup.py), so a unit's rollup_sources row vouches for
both: a step is counted in the hour and identity of its run's newest version, as on the SQL store. The
latency is kept mergeable, never as a percentile: counts per bucket of the SQL store's histogram
(store/histogram.py; bucket -> steps), merged with ``sumMap``; ``self_ms`` sums the stored self time of the
unit's finished runs.

``step_self_time`` holds, per finished run and (step type, name), the run's summed self time
(store/self_time.py's definition), computed once by the refresher. A row is current while its
``run_version`` is the run's newest ``version`` (the writer stores a new run version with every change to
its steps or ends); the refresher retracts (``is_deleted``) a unit's rows whose run moved, changed or went,
so the table follows retention and deletes through the units they make stale.

A database rolled up before this migration has its ``rollup_sources`` emptied: every unit then looks changed,
readers read it raw, and the refresher's next pass recomputes it — both halves — the backfill.
"""

from __future__ import annotations

NAME = "step rollups: rollup_steps (per identity, hour and step) and step_self_time (per finished run)"

UP: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS rollup_steps (
    project LowCardinality(String),
    agent_id LowCardinality(String),
    agent_version LowCardinality(String),
    environment LowCardinality(String),
    hour DateTime('UTC'),
    step_type LowCardinality(String),
    name LowCardinality(String),
    steps UInt64 CODEC(T64, ZSTD(1)),
    errors UInt64 CODEC(T64, ZSTD(1)),
    retries UInt64 CODEC(T64, ZSTD(1)),
    latency_ms Float64 CODEC(Gorilla, ZSTD(1)),
    retry_latency_ms Float64 CODEC(Gorilla, ZSTD(1)),
    self_ms Float64 CODEC(Gorilla, ZSTD(1)),
    latency_buckets Map(UInt16, UInt64) CODEC(ZSTD(1)),
    rolled_version UInt64,
    is_deleted UInt8
) ENGINE = ReplacingMergeTree(rolled_version, is_deleted)
PARTITION BY toYYYYMM(hour)
ORDER BY (project, agent_id, hour, agent_version, environment, step_type, name)
""",
    """
CREATE TABLE IF NOT EXISTS step_self_time (
    project LowCardinality(String),
    agent_id LowCardinality(String),
    hour DateTime('UTC'),
    run_id String CODEC(ZSTD(1)),
    step_type LowCardinality(String),
    name LowCardinality(String),
    self_ms Float64 CODEC(Gorilla, ZSTD(1)),
    run_version UInt64 CODEC(Delta, ZSTD(1)),
    is_deleted UInt8
) ENGINE = ReplacingMergeTree(run_version, is_deleted)
PARTITION BY toYYYYMM(hour)
ORDER BY (project, agent_id, hour, run_id, step_type, name)
""",
    "TRUNCATE TABLE IF EXISTS rollup_sources",
)
