"""The dashboard server on :3000: the built app, deep links, /config.json and its security headers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from agenttracer.server.settings import Settings
from agenttracer.server.ui import create_app
from tests.support.servers import serve_app

Client = Callable[..., httpx.Client]


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    d = tmp_path / "ui_dist"
    (d / "assets").mkdir(parents=True)
    (d / "index.html").write_text("<!doctype html><div id=root></div>")
    (d / "assets" / "index-abc123.js").write_text("console.log(1)")
    (d / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("outside the build")
    return d


@pytest.fixture
def client() -> Iterator[Client]:
    """Starts the dashboard server for a build folder and settings on a real loopback port."""
    with ExitStack() as stack:

        def start(dist: Path, **settings: object) -> httpx.Client:
            url = stack.enter_context(serve_app(create_app(Settings(**settings), dist=dist)))  # type: ignore[arg-type]
            return stack.enter_context(httpx.Client(base_url=url, timeout=10))

        yield start


def test_deep_links_get_the_app_shell_uncached(dist: Path, client: Client) -> None:
    for path in ("/", "/runs/3f2b9c1e-8a4d-4e0f-9b7a-1c2d3e4f5a6b", "/failures?range=24h"):
        res = client(dist).get(path)
        assert res.status_code == 200, path
        assert "<div id=root>" in res.text
        assert res.headers["cache-control"] == "no-cache"


def test_hashed_assets_are_cached_and_missing_assets_are_404(dist: Path, client: Client) -> None:
    c = client(dist)
    res = c.get("/assets/index-abc123.js")
    assert res.status_code == 200
    assert "immutable" in res.headers["cache-control"]
    missing = c.get("/assets/index-gone.js")
    assert missing.status_code == 404
    assert "gone" not in missing.text
    assert c.get("/favicon.svg").text == "<svg/>"


def test_paths_cannot_escape_the_build_folder(dist: Path, client: Client) -> None:
    res = client(dist).get("/..%2Fsecret.txt")
    assert "outside the build" not in res.text


def test_config_derives_the_query_url_from_the_host_the_browser_used(dist: Path, client: Client) -> None:
    c = client(dist, query_port=18101)
    assert c.get("/config.json").json() == {"query_url": "http://127.0.0.1:18101"}
    assert c.get("/config.json", headers={"host": "localhost:3000"}).json() == {"query_url": "http://localhost:18101"}


def test_config_uses_an_explicit_public_query_url(dist: Path, client: Client) -> None:
    c = client(dist, public_query_url="https://query.example.com/")
    assert c.get("/config.json").json() == {"query_url": "https://query.example.com"}


def test_csp_allows_scripts_only_from_the_dashboard_and_requests_to_the_query_api(dist: Path, client: Client) -> None:
    res = client(dist, query_port=8001).get("/")
    csp = res.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "connect-src 'self' http://127.0.0.1:8001;" in csp
    assert res.headers["x-content-type-options"] == "nosniff"


def test_an_unbuilt_dashboard_says_how_to_build_it(tmp_path: Path, client: Client) -> None:
    res = client(tmp_path / "nothing").get("/runs")
    assert res.status_code == 503
    assert "make ui" in res.text


REPO = Path(__file__).resolve().parents[2]


def test_committed_openapi_matches_the_query_api() -> None:
    """ui/openapi.json is what the Query API serves today; `make api-types` refreshes it."""
    import json

    from agenttracer.server.query import create_app as create_query_app

    current = create_query_app(Settings()).openapi()
    committed = json.loads((REPO / "ui" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(current)), "ui/openapi.json is stale: run `make api-types` and commit"


def test_committed_api_types_match_the_committed_openapi() -> None:
    """ui/src/api/schema.d.ts is generated from ui/openapi.json by openapi-typescript."""
    import shutil
    import subprocess

    from tests.support.db import missing

    cli = REPO / "ui" / "node_modules" / "openapi-typescript" / "bin" / "cli.js"
    node = shutil.which("node")
    if node is None or not cli.is_file():
        missing("Node.js and ui/node_modules are needed to regenerate the API types (make ui)")
    out = subprocess.run(
        [node, str(cli), "openapi.json"], cwd=REPO / "ui", capture_output=True, text=True, timeout=60, check=True
    ).stdout
    committed = (REPO / "ui" / "src" / "api" / "schema.d.ts").read_text()
    assert out == committed, "ui/src/api/schema.d.ts is stale: run `make api-types` and commit"
