"""Storage, server-side only (the SDK never imports it). ``sql/`` holds the SQLite and PostgreSQL store;
``clickhouse/`` the ClickHouse one. The apps, jobs and CLI reach either through the store interface
defined here.
"""
