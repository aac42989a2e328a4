"""The write side: the batch writer and everything only ingest (and maintenance) uses — run-level
decisions (``run_state``), the per-dialect SQL (``sql``), step rows, the write lock, SQLite
checkpoints and retention. The Query API and ``store.read`` never import this package."""
