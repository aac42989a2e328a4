"""Hourly and daily aggregates: their one definition (``build``), latency histograms, dirty marks and
their read helpers (``marks``), which parts of a window the rollups answer (``window``) and the
refresher (``refresh``, run by the ingest process or ``agenttracer rollup refresh``)."""
