"""Base tables: runs, steps, projects, api_keys.

Frozen history: a later change is a new migration, never an edit here. The length limits are written
out as numbers (a migration imports no application code); tests/store/clickhouse checks they equal
agenttracer.model's.

Conventions every reader relies on (docs/clickhouse.md):
- ``version`` (UInt64) orders the versions of one row; the newest wins. ``is_deleted`` = 1 marks a
  tombstone: the row with that key is gone (ReplacingMergeTree drops both at merge time).
- A run is identified by ``run_id`` and a step by ``(run_id, seq)`` whatever the sorting key says:
  exact readers take the newest version per identity (``argMax``/``LIMIT 1 BY``) and drop tombstones.
- Identity strings (agent_id, agent_version, environment) are '' while a run's start has not arrived.
"""

from __future__ import annotations

NAME = "base tables: runs, steps, projects, api_keys"

# Replayed inserts (the same insert_deduplication_token) are dropped by the table itself.
_DEDUP = "non_replicated_deduplication_window = 1000"

UP: tuple[str, ...] = (
    f"""
CREATE TABLE IF NOT EXISTS runs (
    project LowCardinality(String),
    agent_id LowCardinality(String),
    started_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    run_id String CODEC(ZSTD(1)),
    agent_version LowCardinality(String),
    environment LowCardinality(String),
    status LowCardinality(String),
    ended_at Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)),
    duration_ms Nullable(Float64) CODEC(ZSTD(1)),
    step_count UInt32 CODEC(T64, ZSTD(1)),
    error_step_count UInt32 CODEC(T64, ZSTD(1)),
    retry_count UInt32 CODEC(T64, ZSTD(1)),
    failure_type LowCardinality(Nullable(String)),
    failure_code LowCardinality(Nullable(String)),
    failure_step_seq Nullable(UInt32),
    failure_message Nullable(String) CODEC(ZSTD(1)),
    failure_recorded_at Nullable(DateTime64(6, 'UTC')) CODEC(ZSTD(1)),
    meta String CODEC(ZSTD(1)),
    meta_removed UInt32 CODEC(T64, ZSTD(1)),
    ingested_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    updated_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    root_span_id Nullable(String) CODEC(ZSTD(1)),
    root_error LowCardinality(Nullable(String)),
    source LowCardinality(String),
    abandoned Bool,
    version UInt64 CODEC(Delta, ZSTD(1)),
    is_deleted UInt8,
    CONSTRAINT run_id_len CHECK length(run_id) <= 36,
    CONSTRAINT project_len CHECK length(project) <= 63,
    CONSTRAINT agent_id_len CHECK lengthUTF8(agent_id) <= 128,
    CONSTRAINT agent_version_len CHECK lengthUTF8(agent_version) <= 64,
    CONSTRAINT environment_len CHECK lengthUTF8(environment) <= 64,
    CONSTRAINT status_len CHECK length(status) <= 16,
    CONSTRAINT failure_type_len CHECK lengthUTF8(ifNull(failure_type, '')) <= 32,
    CONSTRAINT failure_code_len CHECK lengthUTF8(ifNull(failure_code, '')) <= 64,
    CONSTRAINT failure_message_len CHECK lengthUTF8(ifNull(failure_message, '')) <= 256,
    CONSTRAINT meta_len CHECK length(meta) <= 16384,
    CONSTRAINT root_span_id_len CHECK length(ifNull(root_span_id, '')) <= 16,
    CONSTRAINT root_error_len CHECK lengthUTF8(ifNull(root_error, '')) <= 64,
    CONSTRAINT source_len CHECK length(source) <= 8,
    INDEX run_id_bloom run_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX status_set status TYPE set(8) GRANULARITY 4
) ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(started_at)
ORDER BY (project, agent_id, started_at, run_id)
SETTINGS {_DEDUP}
""",
    f"""
CREATE TABLE IF NOT EXISTS steps (
    project LowCardinality(String),
    agent_id LowCardinality(String),
    agent_version LowCardinality(String),
    environment LowCardinality(String),
    run_id String CODEC(ZSTD(1)),
    seq UInt32 CODEC(Delta, ZSTD(1)),
    step_type LowCardinality(String),
    name LowCardinality(String),
    status LowCardinality(String),
    started_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    ended_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    latency_ms Float64 CODEC(Gorilla, ZSTD(1)),
    attempt UInt16 CODEC(T64, ZSTD(1)),
    retry_of_seq Nullable(UInt32) CODEC(ZSTD(1)),
    parent_seq Nullable(UInt32) CODEC(ZSTD(1)),
    error_class LowCardinality(Nullable(String)),
    failure_code LowCardinality(Nullable(String)),
    meta String CODEC(ZSTD(1)),
    meta_removed UInt16 CODEC(T64, ZSTD(1)),
    span_id Nullable(String) CODEC(ZSTD(1)),
    parent_span_id Nullable(String) CODEC(ZSTD(1)),
    version UInt64 CODEC(Delta, ZSTD(1)),
    is_deleted UInt8,
    CONSTRAINT run_id_len CHECK length(run_id) <= 36,
    CONSTRAINT project_len CHECK length(project) <= 63,
    CONSTRAINT agent_id_len CHECK lengthUTF8(agent_id) <= 128,
    CONSTRAINT agent_version_len CHECK lengthUTF8(agent_version) <= 64,
    CONSTRAINT environment_len CHECK lengthUTF8(environment) <= 64,
    CONSTRAINT step_type_len CHECK length(step_type) <= 16,
    CONSTRAINT name_len CHECK lengthUTF8(name) <= 128,
    CONSTRAINT status_len CHECK length(status) <= 8,
    CONSTRAINT error_class_len CHECK lengthUTF8(ifNull(error_class, '')) <= 128,
    CONSTRAINT failure_code_len CHECK lengthUTF8(ifNull(failure_code, '')) <= 64,
    CONSTRAINT meta_len CHECK length(meta) <= 16384,
    CONSTRAINT span_id_len CHECK length(ifNull(span_id, '')) <= 16,
    CONSTRAINT parent_span_id_len CHECK length(ifNull(parent_span_id, '')) <= 16,
    INDEX run_id_bloom run_id TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(started_at)
ORDER BY (project, agent_id, toStartOfHour(started_at), run_id, seq)
SETTINGS {_DEDUP}
""",
    f"""
CREATE TABLE IF NOT EXISTS projects (
    slug String,
    retention_days Nullable(UInt32),
    created_at DateTime64(6, 'UTC'),
    version UInt64,
    is_deleted UInt8,
    CONSTRAINT slug_len CHECK length(slug) <= 63
) ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY slug
SETTINGS {_DEDUP}
""",
    f"""
CREATE TABLE IF NOT EXISTS api_keys (
    key_id String,
    scope LowCardinality(String),
    admin Bool,
    prefix String,
    key_hash String,
    last4 String,
    name Nullable(String),
    created_at DateTime64(6, 'UTC'),
    revoked_at Nullable(DateTime64(6, 'UTC')),
    projects Array(String),
    version UInt64,
    CONSTRAINT key_id_len CHECK length(key_id) <= 32,
    CONSTRAINT scope_len CHECK length(scope) <= 16,
    CONSTRAINT prefix_len CHECK length(prefix) <= 32,
    CONSTRAINT key_hash_len CHECK length(key_hash) <= 64,
    CONSTRAINT last4_len CHECK length(last4) <= 4,
    CONSTRAINT name_len CHECK lengthUTF8(ifNull(name, '')) <= 64,
    CONSTRAINT projects_len CHECK length(projects) <= 1000
) ENGINE = ReplacingMergeTree(version)
ORDER BY key_id
SETTINGS {_DEDUP}
""",
)
