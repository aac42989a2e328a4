"""The two HTTP services: the write-only Ingest API (ingest.py) and the read-only Query API (query.py)."""
