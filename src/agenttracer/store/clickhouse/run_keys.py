"""Reading runs' rows by their whole sorting key, found in ``run_keys`` / ``step_keys`` (schema v0006).

The conditions here name the keys the runs and steps tables have held for ``{run_id:String}`` (or for
the run ids beginning with ``{prefix:String}``); added to a ``latest_runs`` / ``latest_steps`` read, they
let ClickHouse read (and ``FINAL`` merge) only those keys' granules instead of probing every part for
the run id. The key tables are complete once their migration is recorded (it backfills before it is
recorded; the views fill them from then on). Until then each condition holds for every row: the check
is a scalar subquery, evaluated before the read is planned, so once the migration is recorded the
primary key's analysis sees the key set alone."""

from __future__ import annotations

MIGRATION = 6  # schema/migrations/v0006_run_keys.py

_UNREADY = f"(SELECT count() FROM schema_migrations WHERE number = {MIGRATION}) = 0"

RUN_KEYS = (f"({_UNREADY} OR (project, agent_id, started_at, run_id) IN (SELECT project, agent_id, started_at, "
            "run_id FROM run_keys WHERE run_id = {run_id:String}))")
STEP_KEYS = (f"({_UNREADY} OR (project, agent_id, toStartOfHour(started_at), run_id) IN (SELECT project, agent_id, "
             "hour, run_id FROM step_keys WHERE run_id = {run_id:String}))")
PREFIX_KEYS = (f"({_UNREADY} OR (project, agent_id, started_at, run_id) IN (SELECT project, agent_id, started_at, "
               "run_id FROM run_keys WHERE startsWith(run_id, {prefix:String})))")
