"""The ``default`` project exists from the start, as on the SQL store (its migration 0005): keys are bound
to it by default and keyless writers write into it.

Version 1, and only when no row of ``default`` exists (tombstones included): a project deleted later
stays deleted when this runs again.
"""

from __future__ import annotations

NAME = "the default project"

UP: tuple[str, ...] = (
    """
INSERT INTO projects (slug, retention_days, created_at, version, is_deleted)
SELECT 'default', NULL, now64(6, 'UTC'), 1, 0
WHERE (SELECT count() FROM projects WHERE slug = 'default') = 0
""",
)
