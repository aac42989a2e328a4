"""Helpers for the /v1/traces tests: an OpenTelemetry pipeline that exports to a live Ingest API with
the stock OTLP exporter, a server-log capture, and the canary scan of everything stored."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agenttracer.store.sql.schema.engine import make_engine


def provider(url: str, resource: dict[str, Any], batch: int = 2) -> TracerProvider:
    """A TracerProvider exporting protobuf to ``url``/v1/traces in batches of ``batch`` spans, so a
    trace's children and its root travel in different requests."""
    tp = TracerProvider(resource=Resource.create(resource))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=10)
    tp.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=batch, schedule_delay_millis=50))
    return tp


@contextlib.contextmanager
def server_log() -> Iterator[io.StringIO]:
    """Everything any logger writes while the block runs (the in-process server's log included)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def runs(query_url: str, **params: Any) -> list[dict[str, Any]]:
    response = httpx.get(f"{query_url}/v1/runs", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def run_detail(query_url: str, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{query_url}/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def stored_text(db_url: str) -> str:
    """All stored data as text: the SQLite file and its WAL as bytes, or every table of the PostgreSQL
    test schema or the ClickHouse test database dumped row by row (ClickHouse: every row version)."""
    if db_url.split(":", 1)[0] in ("chdb", "clickhouse", "clickhouses"):
        return _clickhouse_text(db_url)
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        blobs = [p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]
        return b"".join(blobs).decode("latin-1")
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    parts = []
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        ).scalars()
        for table in list(tables):
            rows = conn.execute(sa.text(f'SELECT row_to_json(t)::text FROM "{table}" t')).scalars()
            parts.extend(rows)
    engine.dispose()
    return "\n".join(parts)


def _clickhouse_text(url: str) -> str:
    from agenttracer.store.clickhouse.connection import connect

    conn = connect(url)
    try:
        tables = conn.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND NOT is_temporary"
            " AND engine NOT IN ('View', 'MaterializedView')"
        ).rows
        assert tables, "no tables in the ClickHouse test database"
        return "\n".join(repr(row) for (table,) in tables for row in conn.query(f"SELECT * FROM `{table}`").rows)
    finally:
        conn.close()


def assert_no_canary(canary: str, *texts: str) -> None:
    for text in texts:
        assert canary not in text
        assert canary.lower() not in text.lower()
