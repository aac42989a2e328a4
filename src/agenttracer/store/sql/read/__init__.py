"""The read side, used by the Query API: run lists and detail (``runs``), the shared filters, stats
(``stats``, ``stats_rollup``, ``steps``), version comparison (``compare``) and their SQL and math
helpers. Never imports ``store.write``."""
