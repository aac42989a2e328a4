"""Every Prometheus series the two APIs expose, defined here once, each app with a private registry.

Each app built by ``create_app`` owns one ``CollectorRegistry`` (``app.state.metrics``), so several
apps in one process (``agenttracer up`` serves ingest and query from one process; tests build many)
never share or collide on a series, and ``GET /metrics`` of an app shows only that app's series.
No app is ever served by several worker processes: ``agenttracer up`` runs every app once in one
event loop (``server/runner.py``) and ``agenttracer serve`` runs one app in one process, so no
multi-process collection is needed; scaled-out ingest processes are scraped one by one (the
Prometheus configuration in deploy/observability/ discovers every replica).

Both APIs:

- ``agenttracer_http_requests_total{route, method, status}`` and
  ``agenttracer_http_request_duration_seconds{route, method}``: ``route`` is the route template
  (``/v1/runs/{run_id}``), ``unmatched`` for a path no route serves; ``method`` is one of the
  standard methods or ``other``. Kept by ``server/observe.py``.
- ``agenttracer_db_errors_total{error}``: database errors by SQLAlchemy class (the database was
  unreachable, or a statement failed), counted where a request answers 503 or fails.

The Ingest API's own series are defined in ``server/ingest/metrics.py`` (the query app must not
import the write side), its agent-level series in ``server/agent_series.py``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class HttpMetrics:
    """The series both APIs have; ``render()`` is the body of ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "agenttracer_http_requests", "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"), registry=self.registry,
        )
        self.duration = Histogram(
            "agenttracer_http_request_duration_seconds",
            "Seconds from a request's arrival until its answer was sent, by route template and method.",
            ("route", "method"), buckets=REQUEST_BUCKETS, registry=self.registry,
        )
        self.db_errors = Counter(
            "agenttracer_db_errors", "Database errors (unreachable, or a statement failed), by error class.",
            ("error",), registry=self.registry,
        )

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(route, method, str(status)).inc()
        self.duration.labels(route, method).observe(seconds)

    def db_error(self, exc: BaseException) -> None:
        # The SQLAlchemy class (OperationalError, ...): a handful of values, never the message.
        self.db_errors.labels(type(exc).__name__).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class QueryMetrics(HttpMetrics):
    """The Query API's series: only the common ones (request latency by route, database errors)."""
