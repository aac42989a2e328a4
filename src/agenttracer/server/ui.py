"""The dashboard's static server on :3000 (the built files in ``agenttracer/ui_dist``).

NOTE: minimal version that fixes ``create_app``; the dashboard work extends it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from agenttracer.server.settings import Settings

UI_DIST = Path(__file__).resolve().parent.parent / "ui_dist"


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="AgentTracer dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    if (UI_DIST / "index.html").is_file():
        app.mount("/", StaticFiles(directory=UI_DIST, html=True), name="ui")
    else:

        @app.get("/", response_class=HTMLResponse)
        def not_built() -> str:
            return "<h1>AgentTracer</h1><p>The dashboard is not built: run <code>make ui</code>.</p>"

    return app
