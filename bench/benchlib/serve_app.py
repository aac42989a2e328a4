"""Run one AgentTracer API app (ingest or query) in this process, as a benchmark's server under test.

``python -m benchlib.serve_app ingest --database-url URL --port P`` builds the app with the project's
own factory (``agenttracer.server.<app>.create_app(Settings)``) and serves it with a single uvicorn
worker on loopback, access log off (as a production deployment behind a load balancer would run it).
"""

from __future__ import annotations

import argparse
import importlib

import uvicorn

from agenttracer.server.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=("ingest", "query"))
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings.from_env(database_url=args.database_url)
    module = importlib.import_module(f"agenttracer.server.{args.app}")
    app = module.create_app(settings)
    # As `agenttracer serve` / `up` do before serving (server/runner.py); absent from older trees.
    freeze = getattr(importlib.import_module("agenttracer.server.runner"), "freeze_startup_heap", None)
    if freeze is not None:
        freeze()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
