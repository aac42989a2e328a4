"""The shipped monitoring files: promtool accepts them, and they read only series our apps expose.

The Prometheus configuration and rules go through Debian's ``promtool`` (CI installs it; a missing
one fails there). Every ``agenttracer_*`` series an alert rule or a dashboard panel reads must be one
that ``/metrics`` can really expose, and every recording rule a panel reads must be defined — a
renamed metric would otherwise leave an alert silently empty. The compose services mount only
files that exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.observability import (
    CONFIG,
    DASHBOARD,
    OBSERVABILITY,
    RULES,
    dashboard_exprs,
    exposed_series,
    promtool,
    series_used,
    short_rules,
)

COMPOSE = OBSERVABILITY.parent / "docker-compose.yml"


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_shipped_config_and_rules() -> None:
    for args in (("check", "rules", str(RULES)), ("check", "config", str(CONFIG))):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_really_rejects_a_broken_rule(tmp_path: Path) -> None:
    """Guards the test above: a rule with a PromQL syntax error must not pass."""
    broken = tmp_path / "alerts.yml"
    broken.write_text(RULES.read_text().replace("> 0.2", "> > 0.2", 1))
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_the_test_sized_rules_are_valid_too(tmp_path: Path) -> None:
    short = tmp_path / "alerts.yml"
    short.write_text(yaml.safe_dump(short_rules(window="10s", hold="2s")))
    result = promtool("check", "rules", str(short))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_the_issue_asks_for_are_shipped() -> None:
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    for name in ("AgentTracerIngestErrors", "AgentTracerEventsRejected", "AgentTracerRollupLag",
                 "AgentVersionFailureRateHigh", "AgentVersionFailureRateRegression",
                 "AgentVersionStepLatencyRegression"):
        assert name in alerts
        assert alerts[name]["annotations"]["summary"]
    # Shipped windows are operator-sized: nothing fires on a blip.
    for rule in alerts.values():
        if rule.get("for"):
            assert re.fullmatch(r"\d+m", rule["for"]), rule


def test_rules_and_dashboard_read_only_series_the_apps_expose() -> None:
    exposed = exposed_series()
    assert "agenttracer_runs_finished_total" in exposed and "agenttracer_rollup_lag_seconds" in exposed
    used = set().union(*(series_used(rule["expr"]) for rule in rules()), *(series_used(e) for e in dashboard_exprs()))
    assert used and not used - exposed, f"not exposed by /metrics: {sorted(used - exposed)}"


def test_the_series_check_catches_a_misspelt_metric() -> None:
    assert series_used("rate(agenttracer_runs_finish_total[5m])") - exposed_series()


def test_every_recording_rule_the_dashboard_reads_is_defined() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    read = set().union(*(set(re.findall(r"\bagenttracer:[a-z0-9_:]+", e)) for e in dashboard_exprs()))
    assert read and read <= recorded, sorted(read - recorded)


def test_the_dashboard_uses_the_provisioned_data_source() -> None:
    datasource = yaml.safe_load((OBSERVABILITY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    doc = json.loads(DASHBOARD.read_text())
    panels = [p for p in doc["panels"] if p["type"] != "row"]
    assert panels and all(p["datasource"]["uid"] == uid for p in panels)
    provider = yaml.safe_load((OBSERVABILITY / "grafana/provisioning/dashboards/agenttracer.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_monitoring_services_are_opt_in_and_mount_what_exists() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"
        assert all(port.startswith("${AGENTTRACER_PUBLISH_ADDR:-127.0.0.1}:") for port in services[name]["ports"])
    scrape = yaml.safe_load(CONFIG.read_text())["scrape_configs"]
    targets = {job["dns_sd_configs"][0]["names"][0]: job["dns_sd_configs"][0]["port"] for job in scrape}
    assert targets == {"ingest": 8000, "query": 8001}


def test_the_agent_panels_narrow_by_project_too() -> None:
    doc = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["project"]["query"] == "label_values(agenttracer_runs_finished_total, project)"
    assert 'project=~"$project"' in variables["agent"]["query"]  # the agent list follows the project chosen
    agent_level = [e for e in dashboard_exprs() if '"$agent"' in e and not e.startswith("label_values(")]
    assert len(agent_level) >= 5
    assert all('project=~"$project"' in e for e in agent_level), agent_level
