"""The write-only Ingest API (:8000): the app (``app``), body limits and decoding (``body``), event
conversion (``events``, with the hand-written ``fastpath``), the server-side privacy pass (``scrub``),
the Ingest API's own Prometheus series (``metrics``), and OTLP trace export on ``/v1/traces``
(``otlp_route``, ``otlp_decode``, ``otlp_map``)."""

from agenttracer.server.ingest.app import create_app

__all__ = ["create_app"]
