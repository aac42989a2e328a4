"""Helpers for the tests of deploy/observability/: the Prometheus binaries, a real Prometheus server on
a free loopback port, the series our apps expose, and the shipped rules with test-sized windows."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

from agenttracer.server.ingest.metrics import IngestMetrics
from agenttracer.server.metrics import QueryMetrics
from agenttracer.store.sql.rollup.live import RollupWorker
from agenttracer.store.sql.write.retention import RetentionWorker
from tests.support.db import missing
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
RULES = OBSERVABILITY / "alerts.yml"
CONFIG = OBSERVABILITY / "prometheus.yml"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "agenttracer.json"
STARTUP_TIMEOUT_S = 30.0


def binary(name: str) -> str:
    """``prometheus`` or ``promtool``: skips (fails under AGENTTRACER_TEST_STRICT=1) when not installed."""
    exe = shutil.which(name)
    if exe is None:
        missing(f"{name} is not installed (CI installs Debian's package: apt-get install prometheus)")
    return str(exe)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=60)


def exposed_series() -> set[str]:
    """Every sample name our two apps can expose (a counter's ``_total``, a histogram's parts)."""
    engine = sa.create_engine("sqlite://")
    ingest = IngestMetrics(10)
    ingest.watch_workers(rollup=RollupWorker(engine), retention=RetentionWorker(engine, 1))
    names = set()
    for registry in (ingest.registry, QueryMetrics().registry):
        for family in registry.collect():
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(family.type, ("",))
            names.update(family.name + suffix for suffix in suffixes)
    engine.dispose()
    return names


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the Grafana dashboard: panel targets and template variables."""
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in doc["panels"] for t in panel.get("targets", [])]
    exprs += [v["query"] for v in doc["templating"]["list"]]
    return exprs


def series_used(text: str) -> set[str]:
    """The ``agenttracer_*`` series an expression text refers to."""
    return set(re.findall(r"\bagenttracer_[a-z0-9_]+", text))


def short_rules(window: str, hold: str) -> dict[str, Any]:
    """The shipped rules with every range ``[..]`` set to ``window`` and every ``for:`` to ``hold``,
    so that a test sees an alert within seconds; thresholds and expressions stay as shipped."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["expr"] = re.sub(r"\[\d+[smhd]\]", f"[{window}]", rule["expr"])
            if "for" in rule:
                rule["for"] = hold
    return doc


@contextlib.contextmanager
def prometheus(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    """A real Prometheus with ``config`` on 127.0.0.1:<free port>; yields its base URL."""
    exe = binary("prometheus")
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    check = promtool("check", "config", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [exe, f"--config.file={path}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert process.poll() is None, (workdir / "prometheus.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "Prometheus did not become ready"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def instant(base: str, query: str) -> list[dict[str, Any]]:
    """The result vector of an instant query."""
    response = httpx.get(f"{base}/api/v1/query", params={"query": query}, timeout=10)
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])
