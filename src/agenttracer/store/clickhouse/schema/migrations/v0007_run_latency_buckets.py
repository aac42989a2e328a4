"""Run latency in the rollups as counts per bucket of the SQL store's histogram, not DDSketch states.

Frozen history: a later change is a new migration, never an edit here.

``rollup_runs`` and ``rollup_runs_daily`` gain ``latency_buckets`` (bucket -> finished timed runs, the buckets
of store/histogram.py, as ``rollup_steps`` has had since v0004) and lose ``latency`` (a ``quantilesDD`` state):
a stats read merged one state per rollup row, and deserialising them was most of its run statement, where
bucket maps merge like counters (``sumMap``); the percentiles read from them are then the SQL store's own.

Every bucket map (the step rollups' too) is compressed with ``T64, LZ4`` instead of ``ZSTD(1)``: about the same
size (+12 % on these columns at 1 M runs), and a stats read's merge of the step rollups' maps took half the time
(decompressing them was most of it). Parts written before are recompressed as they merge.

Backfill: ``rollup_sources`` and ``rollup_days`` are emptied, so every unit and day looks changed: readers read
them raw (exact) and the refresher's next pass recomputes every unit, both halves, then every day.
"""

from __future__ import annotations

NAME = "run latency rollups as histogram bucket counts: rollup_runs(_daily).latency_buckets for the DDSketch states"

UP: tuple[str, ...] = (
    "ALTER TABLE rollup_runs ADD COLUMN IF NOT EXISTS latency_buckets Map(UInt16, UInt64) CODEC(T64, LZ4)",
    "ALTER TABLE rollup_runs_daily ADD COLUMN IF NOT EXISTS latency_buckets Map(UInt16, UInt64) CODEC(T64, LZ4)",
    "ALTER TABLE rollup_steps MODIFY COLUMN latency_buckets Map(UInt16, UInt64) CODEC(T64, LZ4)",
    "ALTER TABLE rollup_steps_daily MODIFY COLUMN latency_buckets Map(UInt16, UInt64) CODEC(T64, LZ4)",
    "TRUNCATE TABLE IF EXISTS rollup_sources",
    "TRUNCATE TABLE IF EXISTS rollup_days",
    "ALTER TABLE rollup_runs DROP COLUMN IF EXISTS latency",
    "ALTER TABLE rollup_runs_daily DROP COLUMN IF EXISTS latency",
)
