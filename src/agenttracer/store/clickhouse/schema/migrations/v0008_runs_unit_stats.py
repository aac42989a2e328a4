"""``unit_stats``: a projection of the runs table holding, per (project, agent_id, hour), the raw rows' count, newest
``version`` and earliest start — what a stats read compares with ``rollup_sources`` before trusting a rollup.

Frozen history: a later change is a new migration, never an edit here.

The freshness check of ``GET /v1/stats`` (store/clickhouse/rollup.py) counted every run of the window's whole hours
on every call: a month of runs at 1 M runs. Grouped by the projection's key with its aggregates, the engine reads
the projection's rows instead: one per unit and part. The projection is part of each data part, written with it,
so its answers are the table's: the engine reads any part whose projection is not built yet from its rows.

A ReplacingMergeTree drops rows when it merges, and a lightweight ``DELETE`` (retention, project deletion) masks
them: with the table's modes set to ``rebuild``, a merged or mutated part's projection is rebuilt from the rows
that remain, so the counts stay those of the rows a plain ``SELECT`` sees. ``MATERIALIZE`` builds it for the
parts already there, in the background.
"""

from __future__ import annotations

NAME = "runs.unit_stats: a projection of the raw rows' count, newest version and first start per unit"

UP: tuple[str, ...] = (
    "ALTER TABLE runs MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild', "
    "lightweight_mutation_projection_mode = 'rebuild'",
    "ALTER TABLE runs ADD PROJECTION IF NOT EXISTS unit_stats (SELECT project, agent_id, toStartOfHour(started_at), "
    "count(), max(version), min(started_at) GROUP BY project, agent_id, toStartOfHour(started_at))",
    "ALTER TABLE runs MATERIALIZE PROJECTION unit_stats",
)
