"""Rollups: per (project, agent, version, environment, hour) the numbers ``GET /v1/stats`` needs, with a
mergeable latency state, and per (project, agent, hour) what raw rows they were computed from.

Frozen history: a later change is a new migration, never an edit here.

``rollup_runs`` rows are recomputed whole by the refresher (store/clickhouse/rollup.py) from the newest
versions of an hour's runs, so a newer row replaces an older one (``rolled_version``) and ``is_deleted``
retracts an identity no longer there; reads merge the rows' states across hours and identities
(``quantilesDDMerge``, ``sum``, ``sumMap``) — percentiles are never summed. ``rollup_sources`` says,
per (project, agent_id, hour), how many raw run rows (every version, tombstones included) and which
newest ``version`` the rollup saw: a reader trusts an hour's rollup only while the raw rows still say
the same, so an answer is exact in its counts whatever was written since.
"""

from __future__ import annotations

NAME = "rollups: rollup_runs (per identity and hour) and rollup_sources"

UP: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS rollup_runs (
    project LowCardinality(String),
    agent_id LowCardinality(String),
    agent_version LowCardinality(String),
    environment LowCardinality(String),
    hour DateTime('UTC'),
    runs UInt64,
    running UInt64,
    success UInt64,
    failure UInt64,
    partial UInt64,
    steps UInt64,
    retry_steps UInt64,
    runs_with_retries UInt64,
    run_time_ms Float64,
    timed UInt64,
    last_started_at DateTime64(6, 'UTC'),
    failures Map(String, UInt64),
    latency AggregateFunction(quantilesDD(0.01, 0.5, 0.95, 0.99), Float64),
    rolled_version UInt64,
    is_deleted UInt8
) ENGINE = ReplacingMergeTree(rolled_version, is_deleted)
PARTITION BY toYYYYMM(hour)
ORDER BY (project, agent_id, hour, agent_version, environment)
""",
    """
CREATE TABLE IF NOT EXISTS rollup_sources (
    project LowCardinality(String),
    agent_id LowCardinality(String),
    hour DateTime('UTC'),
    source_rows UInt64,
    source_version UInt64,
    rolled_version UInt64
) ENGINE = ReplacingMergeTree(rolled_version)
ORDER BY (project, agent_id, hour)
""",
)
