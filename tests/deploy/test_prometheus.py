"""A real Prometheus scrapes a live Ingest API and Query API and evaluates the shipped alert rules.

Prometheus (Debian's package) runs on a free loopback port with a 1 s scrape and evaluation
interval and the shipped rules with test-sized windows (``short_rules``: ranges of 10 s, ``for`` of
2 s; thresholds and expressions as shipped). A seeded workload sends runs of two versions of one
agent. While both are healthy no alert exists; then version 2 starts failing most of its runs and
the failure-rate alerts go pending, then firing, for version 2 — and never for version 1.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from agenttracer.server import ingest, query
from agenttracer.server.settings import Settings
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from tests.deploy.observability import dashboard_exprs, instant, prometheus, short_rules
from tests.support import events as ev
from tests.support.servers import serve_app

AGENT = "checkout-agent"
HEALTHY, REGRESSED = "1.4.0", "1.5.0"
FAILURE_ALERTS = ("AgentVersionFailureRateHigh", "AgentVersionFailureRateRegression")
ALERT_TIMEOUT_S = 60.0


class Workload:
    """Sends a batch of runs of both versions every 100 ms; ``failing`` is version 2's failure share."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.failing = 0.0
        self.rng = random.Random(16)
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _runs(self) -> list[dict[str, object]]:
        now = datetime.now(timezone.utc)
        batch: list[dict[str, object]] = []
        for version, share in ((HEALTHY, 0.0), (REGRESSED, self.failing)):
            for _ in range(3):
                run_id = ev.new_run_id()
                ident = {"agent_id": AGENT, "agent_version": version, "environment": "prod"}
                failed = self.rng.random() < share
                started = now - timedelta(seconds=2)
                batch += [
                    ev.run_start(run_id, started_at=started.isoformat(), **ident),
                    ev.step(run_id, 1, step_type="llm", latency_ms=120.0, started_at=started.isoformat(),
                            ended_at=(started + timedelta(milliseconds=120)).isoformat(),
                            metadata={"model": "m-1", "user_email": "x"}),  # one key removed per step
                ]
                if failed:
                    batch.append(ev.failure(run_id, failure_type="model", failure_code="rate_limited",
                                            recorded_at=now.isoformat()))
                batch.append(ev.run_end(run_id, ended_at=now.isoformat(), status="failure" if failed else "success",
                                        **ident))
        return batch

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.wait(0.1):
                response = client.post(f"{self.base}/v1/ingest", json={"events": self._runs()})
                if response.status_code != 200 or response.json()["rejected"]:
                    self.errors.append(response.text[:300])

    def __enter__(self) -> Workload:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, str]]:
    # SQLite only: the series do not depend on the database, and one backend keeps this test short.
    url = f"sqlite:///{(tmp_path / 'agenttracer.db').as_posix()}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = Settings(database_url=url)
    with serve_app(ingest.create_app(settings)) as ingest_url, serve_app(query.create_app(settings)) as query_url:
        yield ingest_url, query_url


def alerts(base: str) -> list[dict[str, str]]:
    return [item["metric"] for item in instant(base, "ALERTS")]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_real_prometheus_fires_the_failure_rate_alerts_for_the_regressed_version_only(
    stack: tuple[str, str], tmp_path: Path
) -> None:
    ingest_url, query_url = stack
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(short_rules(window="10s", hold="2s")))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "alerts.yml")],
        "scrape_configs": [
            {"job_name": "agenttracer-ingest", "static_configs": [{"targets": [ingest_url.removeprefix("http://")]}]},
            {"job_name": "agenttracer-query", "static_configs": [{"targets": [query_url.removeprefix("http://")]}]},
        ],
    }
    with prometheus(config, tmp_path) as prom, Workload(ingest_url) as work:
        # Both servers are scraped, each with its own series. A scrape of /metrics is counted after
        # its answer, so the query server's own request series first appears in the second scrape:
        # every series is waited for, none is read once right after the first scrape.
        ready = (
            "up == 1",
            "agenttracer:failure_ratio:rate10m",
            'agenttracer_http_requests_total{job="agenttracer-query", route="/metrics"}',
            'agenttracer_ingest_events_total{job="agenttracer-ingest", outcome="accepted"}',
        )
        deadline = time.monotonic() + ALERT_TIMEOUT_S
        while missing := [expr for expr in ready if len(instant(prom, expr)) < (2 if expr == "up == 1" else 1)]:
            assert time.monotonic() < deadline, f"never found: {missing}; up: {instant(prom, 'up')}"
            time.sleep(0.5)

        # Healthy phase: the rules are evaluated, nothing about the agent fires.
        healthy_until = time.monotonic() + 8
        while time.monotonic() < healthy_until:
            assert not [a for a in alerts(prom) if a["alertname"] in FAILURE_ALERTS]
            time.sleep(1)

        # Version 2 starts failing most runs: its alerts come, version 1 stays silent.
        work.failing = 0.8
        seen: dict[str, set[str]] = {}
        deadline = time.monotonic() + ALERT_TIMEOUT_S
        while set(FAILURE_ALERTS) - set(seen) or "firing" not in seen[FAILURE_ALERTS[0]]:
            assert time.monotonic() < deadline, f"alerts seen: {seen}; ALERTS now: {alerts(prom)}"
            for alert in alerts(prom):
                if alert["alertname"] in FAILURE_ALERTS:
                    assert alert["agent_version"] == REGRESSED, alert
                    assert alert["alertstate"] in ("pending", "firing")
                    seen.setdefault(alert["alertname"], set()).add(alert["alertstate"])
            time.sleep(0.5)
        assert not work.errors, work.errors[:3]

        # Every dashboard query is valid PromQL for this Prometheus and finds data.
        for expr in dashboard_exprs():
            if expr.startswith("label_values("):
                continue
            concrete = expr.replace("$__rate_interval", "10s").replace("$__range", "1m")
            concrete = re.sub(r'"\$[a-z]+"', '".*"', concrete)
            # Only what this workload cannot produce may be empty: no database error, no workers here.
            empty_ok = any(name in expr for name in ("db_errors", "retention_rows", "rollup_lag"))
            assert instant(prom, concrete) or empty_ok, expr
