"""Daily rollups: ``rollup_runs`` and ``rollup_steps`` merged per day, so a long stats window reads a row per
(identity, day) — and per step — where the hourly tables hold 24.

Frozen history: a later change is a new migration, never an edit here.

``rollup_runs_daily`` and ``rollup_steps_daily`` have the hourly tables' columns with ``day`` for ``hour``;
the refresher (store/clickhouse/rollup_days.py) builds a (project, agent_id, day)'s rows by merging its hourly
rows — latency states merged as states, bucket and failure maps summed — and records in ``rollup_days`` the
``signature`` of the ``rollup_sources`` rows those hourly rows stood for (every hour of the day with raw rows:
hour, row count, newest version). A reader trusts a day's rows only while the raw rows of its hours still
give that signature, which holds only while every one of those hours is clean: so days follow writes,
retention and deletes through the hours they make stale, as the hours do.

``rollup_sources`` gains ``step_reach_us``: the latest start (µs) of a step of the unit's runs, every version
(the hour's start when none), so a reader can bound the steps of a clean unit's runs from above — they are
keyed by their own start, not their run's; 0 for a unit recorded before (unknown: no bound) until the unit
is next recomputed (a rebuild of every rollup recomputes them all).

No backfill statement: a day missing from ``rollup_days`` (every day, after this migration) reads hourly,
as before, until the refresher's next pass builds it from the hourly rows already there.
"""

from __future__ import annotations

NAME = "daily rollups: rollup_runs_daily, rollup_steps_daily and rollup_days; rollup_sources.step_reach_us"

UP: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS rollup_runs_daily (
    project LowCardinality(String),
    agent_id LowCardinality(String),
    agent_version LowCardinality(String),
    environment LowCardinality(String),
    day DateTime('UTC'),
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
PARTITION BY toYYYYMM(day)
ORDER BY (project, agent_id, day, agent_version, environment)
""",
    """
CREATE TABLE IF NOT EXISTS rollup_steps_daily (
    project LowCardinality(String),
    agent_id LowCardinality(String),
    agent_version LowCardinality(String),
    environment LowCardinality(String),
    day DateTime('UTC'),
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
PARTITION BY toYYYYMM(day)
ORDER BY (project, agent_id, day, agent_version, environment, step_type, name)
""",
    "ALTER TABLE rollup_sources ADD COLUMN IF NOT EXISTS step_reach_us Int64 DEFAULT 0",
    """
CREATE TABLE IF NOT EXISTS rollup_days (
    project LowCardinality(String),
    agent_id LowCardinality(String),
    day DateTime('UTC'),
    signature UInt64,
    rolled_version UInt64
) ENGINE = ReplacingMergeTree(rolled_version)
ORDER BY (project, agent_id, day)
""",
)
