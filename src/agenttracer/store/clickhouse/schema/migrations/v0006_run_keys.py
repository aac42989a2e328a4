"""``run_keys`` and ``step_keys``: the sorting keys the runs and steps tables have held for a run, by ``run_id``.

Frozen history: a later change is a new migration, never an edit here.

The runs table is sorted by (project, agent_id, started_at, run_id) and the steps table by (project,
agent_id, hour, run_id, seq), so a read by ``run_id`` alone (the run detail) cannot use their primary keys:
it probes every part's bloom filter, and ``FINAL`` merges what it finds. The key tables are sorted by
``run_id``: the run detail first finds the run's keys there, then reads runs and steps by their whole
key, where ``FINAL`` merges a granule or two (store/clickhouse/run_keys.py).

They are not partitioned: a lookup by ``run_id`` then searches one sorted part once merged, where monthly
partitions would make it read a granule in every month. A materialized view fills each with every insert
into its table (every writer, ``copy`` and the tests' direct inserts alike): one row per key, duplicates
collapsed by the engine. A tombstone's key is one the run held before, so the current key is always
there; a key the run moved away from stays (it reads as a tombstone). Retention and project deletion
delete the keys of the rows they delete, after the rows (store/clickhouse/write/retention.py).

The views are created before the backfill, so a row written during the migration is copied or seen by a
view; readers use the key tables only once this migration is recorded (after the backfill), so answers
stay exact while they are built.
"""

from __future__ import annotations

NAME = "run_keys and step_keys: each run's sorting keys by run_id, filled by materialized views"

UP: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS run_keys (
    run_id String CODEC(ZSTD(1)),
    project LowCardinality(String),
    agent_id LowCardinality(String),
    started_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (run_id, project, agent_id, started_at)
""",
    """
CREATE TABLE IF NOT EXISTS step_keys (
    run_id String CODEC(ZSTD(1)),
    project LowCardinality(String),
    agent_id LowCardinality(String),
    hour DateTime('UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (run_id, project, agent_id, hour)
""",
    """
CREATE MATERIALIZED VIEW IF NOT EXISTS run_keys_of_runs TO run_keys AS
SELECT DISTINCT run_id, project, agent_id, started_at FROM runs
""",
    """
CREATE MATERIALIZED VIEW IF NOT EXISTS step_keys_of_steps TO step_keys AS
SELECT DISTINCT run_id, project, agent_id, toStartOfHour(started_at) AS hour FROM steps
""",
    """
INSERT INTO run_keys (run_id, project, agent_id, started_at)
SELECT DISTINCT run_id, project, agent_id, started_at FROM runs
""",
    """
INSERT INTO step_keys (run_id, project, agent_id, hour)
SELECT DISTINCT run_id, project, agent_id, toStartOfHour(started_at) FROM steps
""",
)
