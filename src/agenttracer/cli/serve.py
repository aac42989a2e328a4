"""CLI commands that run the platform: ``up`` (everything, one process), ``serve`` (one part), ``migrate``.

``agenttracer up`` brings the database to the newest schema, then serves the Ingest API (:8000), the
Query API (:8001) and the dashboard (:3000) from one process until Ctrl-C / SIGTERM, which lets
in-flight batches finish. ``agenttracer serve ingest|query|ui`` serves one part alone (what a
container runs; run ``agenttracer migrate`` once beforehand). Settings come from ``AGENTTRACER_*``
variables; the options here override them.

With authentication off the servers listen on loopback only: a non-loopback ``--host`` is refused
unless ``--insecure-bind`` is given (then a warning is printed).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer

from agenttracer.cli.app import app

HostOpt = Annotated[
    str | None, typer.Option("--host", help="Address to listen on (env AGENTTRACER_HOST, default 127.0.0.1).")
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///path or postgresql://… (env AGENTTRACER_DATABASE_URL).",
    ),
]
InsecureOpt = Annotated[
    bool,
    typer.Option("--insecure-bind", help="Allow a non-loopback --host while no API keys are required (warns)."),
]
LogOpt = Annotated[str | None, typer.Option("--log-level", help="debug, info, warning or error.")]


class Part(str, Enum):
    ingest = "ingest"
    query = "query"
    ui = "ui"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"agenttracer: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _settings(**overrides: Any) -> Any:
    from agenttracer.server.settings import Settings

    try:
        return Settings.from_env(**overrides)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None


def _display_url(url: str) -> str:
    from agenttracer.store import display_url

    return display_url(url)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _store(settings: Any) -> Any:
    from agenttracer.store import open_store

    try:
        return open_store(settings.database_url)
    except Exception as exc:
        raise _fail(f"bad database URL {_display_url(settings.database_url)}: {exc}", 2) from None


def _migrate(settings: Any, store: Any) -> None:
    shown = _display_url(settings.database_url)
    try:
        before = store.current_revision()
        store.migrate()
        after = store.current_revision()
    except Exception as exc:
        raise _fail(f"cannot migrate {shown}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    change = f"{before or 'empty'} -> {after}" if before != after else f"already at {after}"
    typer.echo(f"database {shown}: schema {change}", err=True)


def _check_bind(settings: Any, store: Any) -> None:
    """Refuse to expose an unauthenticated server beyond this machine unless explicitly allowed."""
    from agenttracer.server.auth import auth_required

    if is_loopback(settings.host) or auth_required(settings, store):
        return
    if not settings.insecure_bind:
        raise _fail(
            f"refusing to listen on {settings.host}: API keys are not required, so anyone who can reach "
            "this address could write and read telemetry. Create keys (agenttracer keys create) and set "
            "AGENTTRACER_REQUIRE_AUTH=1, use --host 127.0.0.1, or pass --insecure-bind if you really mean it.",
            2,
        )
    typer.secho(
        f"WARNING: listening on {settings.host} with authentication OFF (--insecure-bind): "
        "anyone who can reach this address can write and read telemetry.",
        err=True,
        fg=typer.colors.YELLOW,
    )


def _factory(part: Part) -> Callable[[Any], Any]:
    if part is Part.ingest:
        from agenttracer.server.ingest import create_app

        return create_app
    if part is Part.ui:
        from agenttracer.server.ui import create_app as create_ui

        return create_ui
    try:
        from agenttracer.server.query import create_app as create_query
    except ImportError as exc:
        raise _fail(f"the Query API is not available in this installation ({exc}).") from None
    return create_query


def _configure_logging(level_name: str, fmt: str) -> None:
    from agenttracer.server.logs import configure_logging

    level = logging.getLevelName(level_name.upper())
    if not isinstance(level, int):
        raise _fail(f"unknown log level {level_name!r}: use debug, info, warning or error", 2)
    try:
        configure_logging(level, fmt)
    except ValueError as exc:
        raise _fail(f"AGENTTRACER_LOG_FORMAT: {exc}", 2) from None
    # uvicorn's per-server start/stop chatter, times three, says less than our own banner.
    logging.getLogger("uvicorn.error").setLevel(max(level, logging.WARNING))


_LABELS = {"ingest": "Ingest API", "query": "Query API", "ui": "Dashboard"}


def _run(services: list[Any], settings: Any) -> None:
    from agenttracer.server.connections import ConnectionTimeouts
    from agenttracer.server.runner import StartupError, freeze_startup_heap, serve

    _configure_logging(settings.log_level, settings.log_format)

    def announce(bound: list[Any]) -> None:
        for svc in bound:
            host = f"[{svc.host}]" if ":" in svc.host else svc.host
            url = f"http://{host}:{svc.port}"
            extra = f"   (API docs: {url}/docs)" if svc.name in ("ingest", "query") else ""
            typer.echo(f"  {_LABELS.get(svc.name, svc.name):<11} {url}{extra}", err=True)
        typer.echo("AgentTracer is up. Press Ctrl-C to stop.", err=True)

    # The process that serves ingest also runs the background jobs (never the read-only Query API): it
    # prunes each project's runs past its retention (its own, else AGENTTRACER_RETENTION_DAYS), it keeps
    # the rollups current, and it closes the runs whose events stopped (AGENTTRACER_RUN_TIMEOUT_S; 0 turns
    # that off).
    jobs_store = workers = None
    if any(svc.name == "ingest" for svc in services):
        jobs_store = _store(settings)
        workers = jobs_store.start_workers(
            retention_days=settings.retention_days, rollup_interval_s=settings.rollup_interval_seconds,
            rollup_settle_s=settings.rollup_settle_seconds,
            rollup_live_interval_s=settings.rollup_live_interval_seconds, run_timeout_s=settings.run_timeout_s,
        )
    for svc in services:  # the ingest app's /metrics reports this process's background workers
        metrics = getattr(svc.app.state, "metrics", None) if svc.name == "ingest" else None
        if metrics is not None and workers is not None:
            metrics.watch_workers(rollup=workers.rollup, retention=workers.retention, sweep=workers.sweep)
    freeze_startup_heap()  # the apps, stores and workers above are built: they live as long as we do
    try:
        # logging levels were set above
        timeouts = ConnectionTimeouts(header_s=settings.header_timeout_seconds, idle_s=settings.idle_timeout_seconds)
        serve(services, on_started=announce, shutdown_timeout_s=settings.shutdown_timeout_seconds, timeouts=timeouts)
    except StartupError as exc:
        raise _fail(str(exc)) from None
    finally:
        if workers is not None:
            workers.stop()
        if jobs_store is not None:
            jobs_store.close()
    typer.echo("AgentTracer stopped.", err=True)


def _with_dashboard_origin(settings: Any) -> Any:
    """Let the dashboard served by this process read the Query API from the browser, whatever its port."""
    from dataclasses import replace

    hosts = ["localhost", "127.0.0.1"]
    if settings.host not in ("0.0.0.0", "::", *hosts):
        hosts.append(settings.host)
    extra = [f"http://{h}:{settings.ui_port}" for h in hosts]
    return replace(settings, cors_origins=tuple(dict.fromkeys([*settings.cors_origins, *extra])))


@app.command()
def up(
    host: HostOpt = None,
    ingest_port: Annotated[int | None, typer.Option(help="Ingest API port (default 8000).")] = None,
    query_port: Annotated[int | None, typer.Option(help="Query API port (default 8001).")] = None,
    ui_port: Annotated[int | None, typer.Option(help="Dashboard port (default 3000).")] = None,
    database_url: DbOpt = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Do not serve the dashboard.")] = False,
    insecure_bind: InsecureOpt = False,
    log_level: LogOpt = None,
) -> None:
    """Migrate the database, then serve ingest, query and the dashboard from one process."""
    from agenttracer.server.runner import Service

    settings = _settings(
        host=host,
        ingest_port=ingest_port,
        query_port=query_port,
        ui_port=ui_port,
        database_url=database_url,
        insecure_bind=insecure_bind or None,
        log_level=log_level,
    )
    if not no_ui:
        settings = _with_dashboard_origin(settings)
    store = _store(settings)
    try:
        _migrate(settings, store)
        _check_bind(settings, store)
    finally:
        store.close()
    parts = [(Part.ingest, settings.ingest_port), (Part.query, settings.query_port)]
    if not no_ui:
        parts.append((Part.ui, settings.ui_port))
    factories = [(part, port, _factory(part)) for part, port in parts]
    services = [Service(part.value, factory(settings), settings.host, port) for part, port, factory in factories]
    _run(services, settings)


@app.command("serve")
def serve_part(
    part: Annotated[Part, typer.Argument(help="Which part to serve: ingest, query or ui.")],
    host: HostOpt = None,
    port: Annotated[int | None, typer.Option(help="Port (default: 8000 ingest, 8001 query, 3000 ui).")] = None,
    database_url: DbOpt = None,
    insecure_bind: InsecureOpt = False,
    log_level: LogOpt = None,
) -> None:
    """Serve one part alone (what a container runs). Run `agenttracer migrate` first."""
    from agenttracer.server.runner import Service

    settings = _settings(host=host, database_url=database_url, insecure_bind=insecure_bind or None, log_level=log_level)
    store = _store(settings)
    try:
        _check_bind(settings, store)
    finally:
        store.close()
    default_port = {Part.ingest: settings.ingest_port, Part.query: settings.query_port, Part.ui: settings.ui_port}
    chosen = port if port is not None else default_port[part]
    _run([Service(part.value, _factory(part)(settings), settings.host, chosen)], settings)


@app.command()
def migrate(database_url: DbOpt = None) -> None:
    """Bring the database schema to the newest version (safe to run repeatedly)."""
    settings = _settings(database_url=database_url)
    store = _store(settings)
    try:
        _migrate(settings, store)
    finally:
        store.close()
