"""The two HTTP services: the write-only Ingest API (``ingest/``) and the read-only Query API
(``query/``), plus what they share (auth, settings, wire models, the dashboard's static files)."""
