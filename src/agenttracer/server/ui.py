"""The dashboard's server on :3000: the built single-page app in ``agenttracer/ui_dist``.

- ``/config.json`` tells the page where the Query API is, as the browser sees it: the configured
  ``public_query_url``, or — when it was left at its default — the host the browser used to reach
  the dashboard with the Query API's port (so ``http://127.0.0.1:3000`` reads ``http://127.0.0.1:8001``).
- ``/assets/*`` are content-hashed build files, cached for a year; a missing asset is a 404.
- Any other path that is not a file of the build gets ``index.html`` (never cached), so deep links such as
  ``/runs/<id>`` load the app, whose router takes over.
- Every answer carries a Content-Security-Policy that allows scripts only from this origin and network
  requests only to this origin and the Query API.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from agenttracer.server.settings import Settings

UI_DIST = Path(__file__).resolve().parent.parent / "ui_dist"

_DEFAULT_PUBLIC_QUERY_URL = next(f.default for f in fields(Settings) if f.name == "public_query_url")

NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>AgentTracer</title></head>
<body style="font-family:system-ui;margin:3rem"><h1>AgentTracer</h1>
<p>The dashboard is not built yet. Build it with <code>make ui</code> (needs Node.js and npm), then reload.</p>
<p>The APIs work without it: try <code>curl localhost:8001/v1/runs</code>.</p></body></html>"""


def public_query_url(settings: Settings, request: Request) -> str:
    """Where the browser should send Query API requests."""
    if settings.public_query_url != _DEFAULT_PUBLIC_QUERY_URL:
        return settings.public_query_url.rstrip("/")
    host = request.url.hostname or "localhost"
    if ":" in host:  # an IPv6 literal needs its brackets back
        host = f"[{host}]"
    return f"{request.url.scheme}://{host}:{settings.query_port}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _csp(query_url: str) -> str:
    connect = " ".join(filter(None, ["'self'", _origin(query_url)]))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


class _SecurityHeaders(BaseHTTPMiddleware):
    def __init__(self, app: object, settings: Settings) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.settings = settings

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _csp(public_query_url(self.settings, request)))
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response


def _file_in_dist(dist: Path, path: str) -> Path | None:
    """The build file for a URL path, or None (also for anything escaping the build folder)."""
    if not path:
        return None
    candidate = (dist / path).resolve()
    try:
        candidate.relative_to(dist)
    except ValueError:
        return None
    return candidate if candidate.is_file() else None


def create_app(settings: Settings, *, dist: Path | None = None) -> FastAPI:
    """The dashboard server; ``dist`` overrides the build folder (tests)."""
    dist = (dist or UI_DIST).resolve()
    app = FastAPI(title="AgentTracer dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_SecurityHeaders, settings=settings)

    @app.get("/config.json", include_in_schema=False)
    def config(request: Request) -> JSONResponse:
        return JSONResponse({"query_url": public_query_url(settings, request)}, headers={"Cache-Control": "no-store"})

    @app.get("/{path:path}", include_in_schema=False)
    def page(path: str) -> Response:
        index = dist / "index.html"
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
        found = _file_in_dist(dist, path)
        if found is not None:
            immutable = path.startswith("assets/")
            cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
            return FileResponse(found, headers={"Cache-Control": cache})
        if path.startswith("assets/"):
            return JSONResponse({"detail": "no such asset in the dashboard build"}, status_code=404)
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    return app
