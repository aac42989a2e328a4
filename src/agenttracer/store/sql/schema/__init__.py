"""The schema: table definitions (``tables``), engines (``engine``) and the shipped migrations
(``migrations/``, applied by ``migrate``). Migrations never import application code."""
