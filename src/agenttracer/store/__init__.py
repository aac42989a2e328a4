"""Storage, server-side only (the SDK never imports it): open a store from its URL.

``open_store(url)`` picks the backend by the URL's scheme and returns a :class:`~agenttracer.store.interface.Store`
— the only thing the apps, the jobs and the CLI see. ``sql/`` holds the SQLite and PostgreSQL store,
``clickhouse/`` the ClickHouse one (a server through clickhouse-connect, or the embedded engine through
chdb). A backend is imported only when a URL asks for it, so nothing loads chdb unless asked.

The backend-neutral vocabulary lives beside this module: ``interface`` (the protocols), ``run_state``
and ``otlp_assemble`` (the write rules), ``records`` (write and job reports), ``filters``, ``cursors``,
``results``, ``compare_result``, ``stats_math``, ``histogram``, ``cursor_seal``, ``agent_pages`` (the
reads), ``keys`` and ``projects``.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit, urlunsplit

from agenttracer.store.interface import Opener, OpenOptions, Store

DEFAULT_DATABASE_URL = "sqlite:///.agenttracer/agenttracer.db"

# URL scheme (before any ``+driver``) -> the package whose ``open_store(url, options)`` opens it.
BACKENDS: dict[str, str] = {
    "sqlite": "agenttracer.store.sql",
    "postgresql": "agenttracer.store.sql",
    "postgres": "agenttracer.store.sql",
    "clickhouse": "agenttracer.store.clickhouse",
    "clickhouses": "agenttracer.store.clickhouse",
    "chdb": "agenttracer.store.clickhouse",
}


def scheme_of(url: str) -> str:
    """The URL's scheme without its driver (``postgresql+psycopg`` -> ``postgresql``), lower case."""
    return url.partition(":")[0].partition("+")[0].strip().lower()


def backend_for(url: str) -> str:
    """The package that opens ``url``; ValueError naming the schemes understood."""
    package = BACKENDS.get(scheme_of(url))
    if package is None:
        known = ", ".join(f"{scheme}://" for scheme in BACKENDS)
        raise ValueError(f"database URL: the scheme must be one of {known}")
    return package


def open_store(url: str, *, readonly: bool = False, statement_timeout_ms: int = 0,
               connections: int | None = None) -> Store:
    """The store ``url`` names (options: :class:`~agenttracer.store.interface.OpenOptions`). ValueError for a
    URL no backend takes; the backend's error when it cannot be reached."""
    opener: Opener = importlib.import_module(backend_for(url)).open_store
    return opener(url, OpenOptions(readonly=readonly, statement_timeout_ms=statement_timeout_ms,
                                   connections=connections))


def display_url(url: str) -> str:
    """``url`` fit to print: the password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
    except ValueError:
        return "<unparseable database URL>"


__all__ = ["BACKENDS", "DEFAULT_DATABASE_URL", "OpenOptions", "Store", "backend_for", "display_url", "open_store",
           "scheme_of"]
