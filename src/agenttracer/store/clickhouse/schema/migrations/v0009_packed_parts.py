"""Small parts of the tables every ingest batch writes are stored packed: one file per part.

Frozen history: a later change is a new migration, never an edit here.

Every insert makes a new part in ``runs`` and ``steps`` and, through their materialized views, in
``run_keys`` and ``step_keys``. A part in the usual ("Full") storage is a directory of ~13 files
(data, marks, primary index, checksums, column list, skip indexes, ...), and creating them cost the
embedded engine more CPU in the kernel than the insert's own work: measured on ext4 with chdb, ~15 ms
of system CPU per insert of ~400 rows against ~5 ms with the part's files packed into one
(``data.packed``), the user CPU unchanged (docs/performance.md). Parts under
``min_bytes_for_full_part_storage`` (uncompressed) are written packed; the parts merges make past it,
which hold nearly all the rows of a large table and serve the reads, keep the Full storage.

Packed storage is ClickHouse's own part format, open-sourced upstream in June 2026 (ClickHouse pull
request 108118; chdb 4.4, ClickHouse 26.9, has it): a server from before it refuses the setting, and once
a table holds packed parts an older server cannot read them.
"""

from __future__ import annotations

NAME = "small parts of runs, steps and their key tables stored packed (one file per part)"

# Uncompressed bytes: what an insert makes is far below, what merges make soon exceeds it.
_FULL_FROM = 10 * 1024 * 1024

UP: tuple[str, ...] = tuple(
    f"ALTER TABLE {table} MODIFY SETTING min_bytes_for_full_part_storage = {_FULL_FROM}"
    for table in ("runs", "steps", "run_keys", "step_keys")
)
