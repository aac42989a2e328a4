"""Every server-side setting in one typed object, read from ``AGENTTRACER_*`` environment variables.

docs/configuration.md lists each setting with its default; keep the two in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from agenttracer.store import DEFAULT_DATABASE_URL

ENV_PREFIX = "AGENTTRACER_"


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean (1/0, true/false), got {raw!r}")


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    ingest_port: int = 8000
    query_port: int = 8001
    ui_port: int = 3000
    # Require API keys even when none exist yet (keys are required anyway as soon as one exists).
    require_auth: bool = False
    # Allow binding to a non-loopback address with auth off (a warning is printed).
    insecure_bind: bool = False
    retention_days: int | None = None
    # A running run with no new event for this many seconds is closed by the ingest process as
    # failure / orchestration / abandoned (store/sql/write/abandon.py); 0 turns the sweep off.
    run_timeout_s: int = 3600
    # Ingest requests allowed per key per minute; 0 means unlimited.
    rate_limit_per_minute: int = 0
    # Seconds the APIs remember that no API key exists (keyless requests skip a database query);
    # the first key created takes effect within this time. Revocation is never cached. 0: ask always.
    no_key_cache_seconds: int = 1
    # Origins allowed to read the Query API from a browser (the dashboard).
    cors_origins: tuple[str, ...] = field(
        default=("http://localhost:3000", "http://127.0.0.1:3000")
    )
    # Where the dashboard finds the Query API, as the browser sees it.
    public_query_url: str = "http://localhost:8001"
    log_level: str = "info"
    # "text" (one human-readable line per record) or "json" (one JSON object per line; server/logs.py).
    log_format: str = "text"
    # GET /metrics on both APIs and the counting behind it (server/metrics.py); off = neither.
    metrics_enabled: bool = True
    # Most label combinations each agent-level series family keeps, its `other` series included.
    metrics_max_agent_series: int = 1000
    # Seconds without an update after which an agent-level combination may give its place at the cap to a
    # new one (server/agent_series.py).
    metrics_agent_series_idle_seconds: int = 600
    # A bearer token for GET /metrics alone, checked in memory (scrapes work while the database is
    # down); unset: /metrics takes a read-scope API key whenever the APIs require keys.
    metrics_token: str | None = None
    # The ingest process's background rollup refresher: seconds between passes (0 turns it off), and
    # how long after an hour ends before it is first rolled up (late steps of runs still in flight).
    rollup_interval_seconds: int = 60
    rollup_settle_seconds: int = 120
    # Seconds between passes of the live refresher (the newest, not yet rolled-up hour kept in 10-second
    # and minute rows, store/sql/rollup/live.py); 0 turns it off.
    rollup_live_interval_seconds: int = 2
    # The key that seals the Query API's pagination cursors (HMAC-SHA256). Empty: a random key per
    # process, so cursors last as long as the process. Give every query process behind one load
    # balancer the same value. A secret: never logged, never shown.
    cursor_secret: str | None = field(default=None, repr=False)
    # The deadline of one Query API request, from its arrival: time waiting for a worker plus the
    # database's work; past it the work is stopped and the request answered 503 with Retry-After.
    # 0 turns the limit off.
    query_timeout_ms: int = 15_000
    # Query API reads worked on at once: worker threads, and connections in the read pool (one each).
    query_workers: int = 8
    # Query API reads waiting for a worker; one more is answered 503 with Retry-After at once.
    # 0: 8 per worker (server/query/gate.py).
    query_queue: int = 0
    # After SIGTERM/SIGINT, requests in flight get this long to finish; the process is gone at the
    # latest 3 seconds later (server/runner.py).
    shutdown_timeout_seconds: int = 10
    # Slow and idle connections (server/connections.py, server/ingest/admission.py). A connection must send
    # a request's complete headers within header_timeout_seconds of opening (or of its previous answer),
    # an Ingest API request its whole body within body_timeout_seconds of the start of the read (else 408);
    # a keep-alive connection idle for idle_timeout_seconds is closed.
    header_timeout_seconds: int = 10
    body_timeout_seconds: int = 30
    idle_timeout_seconds: int = 5
    # Write requests one client (its API key; its address without a key) may have in progress at once on
    # the Ingest API; past it, 429 with Retry-After. It also holds at most half the write slots.
    max_requests_per_client: int = 16

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``AGENTTRACER_<NAME>`` variables, then explicit overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, str(f.type), raw)
        settings = cls(**values)
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def _coerce(name: str, type_name: str, raw: str) -> Any:
    try:
        if type_name.startswith("bool"):
            return _parse_bool(raw)
        if type_name.startswith("int"):
            return int(raw) if raw.strip() else None
        if type_name.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}: {exc}") from exc
