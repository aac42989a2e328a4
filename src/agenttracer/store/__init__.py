"""Storage: the schema (tables.py), engines (engine.py), migrations, and the ingest-only writer and
query-only reader. Server-side only: the SDK never imports this package."""
