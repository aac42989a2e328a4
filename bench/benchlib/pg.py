"""PostgreSQL set-up for the benchmarks: our own database on the shared server, schemas per run.

Benchmarks never touch the colleagues' ``test`` database: they create ``at_bench`` (override with
``--pg-url``) and, for throwaway measurements, a schema inside it that is dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
from sqlalchemy.engine import make_url

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_BENCH_URL = "postgresql://postgres@127.0.0.1:5432/at_bench"


def libpq_dsn(url: str) -> str:
    """A libpq connection string for a SQLAlchemy-style URL (drops the ``+psycopg`` driver)."""
    parsed = make_url(url)
    parsed = parsed.set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def ensure_database(url: str, admin_url: str = DEFAULT_ADMIN_URL) -> None:
    """CREATE DATABASE for ``url`` if it does not exist yet (connecting through ``admin_url``)."""
    name = make_url(url).database
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"refusing to create a database named {name!r}")
    with psycopg.connect(libpq_dsn(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def schema_url(url: str, schema: str) -> str:
    """``url`` with every session's search_path set to ``schema``."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def temporary_schema(url: str, prefix: str = "at_bench_tmp") -> Iterator[str]:
    """A fresh schema in the bench database, dropped on exit; yields a URL bound to it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(url, schema)
    finally:
        with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def server_settings(url: str) -> dict[str, str]:
    """The server settings that shape the figures (quoted beside them in docs/performance.md)."""
    names = ("server_version", "shared_buffers", "work_mem", "effective_cache_size", "synchronous_commit",
             "max_parallel_workers_per_gather", "random_page_cost", "jit")
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]
