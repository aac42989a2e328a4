"""The ClickHouse read side, used by the Query API: run lists and detail (``runs``), agents, stats
(``stats``, ``steps``), version comparison (``compare``) and the SQL they share (``sql``).

Answers are the SQL store's (``store/sql/read``): the same result types, cursors and definitions
(docs/analytics.md). The tables keep several versions of a run or a step until merges drop the old
ones, so every read here takes the newest version of each run (``sql.latest_runs``) or step before it
filters or counts; nothing relies on ``FINAL`` over the big tables. Never imports the write side."""
