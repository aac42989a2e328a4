"""The migrations, applied in the order of their number. Each module defines ``NAME`` (a line saying
what it does) and ``UP`` (the statements, run in order; each must be safe to run again, e.g.
``IF NOT EXISTS``, because ClickHouse has no transactional DDL). Frozen once landed: a change is a new
module with the next number. They import no application code."""
