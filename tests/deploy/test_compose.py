"""The deployment files: the compose file is valid, and everything it runs really exists.

No Docker engine runs on our machines, so the containers themselves never start here. What can be
checked is checked: Debian's ``docker-compose`` validates the file against the Compose schema (CI
installs it; a missing validator fails there), each container command is a real ``agenttracer``
command, every variable handed to the containers is a real setting, and the Dockerfile copies only
files that exist. tests/deploy/test_processes.py runs the same commands as separate processes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from agenttracer.server.settings import ENV_PREFIX, Settings
from tests.support.db import missing

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
AGENTTRACER_IMAGE = "agenttracer:local"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def app_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose()["services"].items() if svc.get("image") == AGENTTRACER_IMAGE}


def docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        missing("docker-compose is not installed (CI installs Debian's package: apt-get install docker-compose)")
    return str(exe)


def test_compose_file_is_valid_for_docker_compose() -> None:
    result = subprocess.run(
        [docker_compose(), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, cwd=DEPLOY,
    )
    assert result.returncode == 0, result.stderr


def test_the_validator_really_rejects_a_broken_file(tmp_path: Path) -> None:
    """Guards the test above: a typo in a dependency condition must not pass."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("service_completed_successfully", "service_done"))
    result = subprocess.run(
        [docker_compose(), "-f", str(broken), "config", "--quiet"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "service_done" in result.stderr


def test_the_root_compose_file_includes_the_deploy_one() -> None:
    """`docker compose up -d` from the repository root (the spec's Quick Start) uses deploy/."""
    root = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert root == {"include": ["deploy/docker-compose.yml"]}
    assert not (ROOT / "docker-compose.yml").exists()  # two root files would make compose pick one


def test_the_stack_has_postgres_15_with_a_volume_and_a_healthcheck() -> None:
    spec = compose()
    pg = spec["services"]["postgres"]
    assert pg["image"] == "postgres:15"
    volume = pg["volumes"][0].split(":")[0]
    assert volume in spec["volumes"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])


def test_apis_start_only_after_the_one_shot_migration() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("ingest", "query"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}


def published(service: dict[str, Any]) -> list[int]:
    return [int(p.rsplit(":", 2)[-1]) for p in service.get("ports", [])]


def test_the_promised_ports() -> None:
    services = compose()["services"]
    assert published(services["ingest"]) == [8000]
    assert published(services["query"]) == [8001]
    assert published(services["ui"]) == [3000]
    assert "ports" not in services["postgres"]  # the database stays on the compose network


def test_ports_are_published_on_loopback_unless_told_otherwise() -> None:
    for name in ("ingest", "query", "ui"):
        for port in compose()["services"][name]["ports"]:
            assert port.startswith("${AGENTTRACER_PUBLISH_ADDR:-127.0.0.1}:"), (name, port)


@pytest.mark.parametrize(
    "service", ["migrate", "ingest", "query", "ui", "ch-migrate", "ch-ingest", "ch-query", "ch-ui"]
)
def test_every_container_command_is_a_real_cli_command(service: str) -> None:
    command = app_services()[service]["command"]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "agenttracer"), *command, "--help"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"`agenttracer {' '.join(command)}` is not a CLI command: {result.stderr}"


def test_healthchecks_probe_the_health_urls_on_each_port() -> None:
    services = compose()["services"]
    for name, port in (("ingest", 8000), ("query", 8001)):
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/health" in probe


def test_every_variable_given_to_the_containers_is_a_setting() -> None:
    settings = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    for name, service in app_services().items():
        unknown = set(service["environment"]) - settings
        assert not unknown, f"{name} sets variables Settings does not read: {unknown}"


def test_dockerfile_runs_the_cli_and_copies_only_what_exists() -> None:
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["agenttracer"]' in text
    for match in re.finditer(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in match.group(1).split():
            assert source == "." or (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    # The compose build points at this Dockerfile with the repository root as context.
    build = app_services()["ingest"]["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE


# --- The ClickHouse profile (`docker compose --profile clickhouse up -d`) ---------------------------------

CLICKHOUSE_SERVICES = {"clickhouse", "ch-migrate", "ch-ingest", "ch-ingest-lb", "ch-query", "ch-ui"}
CLICKHOUSE_URL = "clickhouse://agenttracer:${CLICKHOUSE_PASSWORD:-agenttracer}@clickhouse:8123/agenttracer"


def test_the_clickhouse_services_start_only_with_their_profile() -> None:
    """Compose starts a service with ``profiles`` only when one of them is named (`--profile clickhouse`);
    the ones without run on a plain `docker compose up`."""
    services = compose()["services"]
    by_profile = {name: tuple(svc.get("profiles", ())) for name, svc in services.items()}
    assert {name for name, p in by_profile.items() if p == ("clickhouse",)} == CLICKHOUSE_SERVICES
    assert {name for name, p in by_profile.items() if not p} == {"postgres", "migrate", "ingest", "query", "ui"}


def test_the_clickhouse_server_is_the_official_image_pinned_with_a_volume_and_a_healthcheck() -> None:
    spec = compose()
    server = spec["services"]["clickhouse"]
    image, _, tag = server["image"].partition(":")
    assert image == "clickhouse/clickhouse-server"
    assert re.fullmatch(r"2[56]\.\d+", tag), "pin a 25.x/26.x release, never latest"
    volume, path = server["volumes"][0].split(":")[:2]
    assert volume in spec["volumes"] and path == "/var/lib/clickhouse"
    probe = server["healthcheck"]["test"]
    assert probe[:2] == ["CMD", "clickhouse-client"] and "SELECT 1" in probe
    assert server["environment"]["CLICKHOUSE_DB"] == "agenttracer"
    assert "ports" not in server  # the database stays on the compose network


def test_the_clickhouse_apps_use_the_server_and_start_after_their_migration() -> None:
    services = compose()["services"]
    for name in ("ch-migrate", "ch-ingest", "ch-query", "ch-ui"):
        assert services[name]["environment"]["AGENTTRACER_DATABASE_URL"] == CLICKHOUSE_URL, name
        assert services[name]["image"] == AGENTTRACER_IMAGE
    for name in ("migrate", "ingest", "query", "ui"):  # the PostgreSQL stack is unchanged
        assert services[name]["environment"]["AGENTTRACER_DATABASE_URL"].startswith("postgresql://")
    assert services["ch-migrate"]["command"] == ["migrate"]
    assert services["ch-migrate"]["depends_on"] == {"clickhouse": {"condition": "service_healthy"}}
    for name in ("ch-ingest", "ch-query"):
        assert services[name]["depends_on"] == {"ch-migrate": {"condition": "service_completed_successfully"}}
        port = 8000 if name == "ch-ingest" else 8001
        assert f"http://127.0.0.1:{port}/health" in " ".join(services[name]["healthcheck"]["test"])
    assert services["ch-ui"]["environment"]["AGENTTRACER_PUBLIC_QUERY_URL"].endswith(":8101}")


def test_several_ingest_replicas_answer_on_one_address() -> None:
    services = compose()["services"]
    assert services["ch-ingest"]["deploy"]["replicas"] >= 2
    assert "ports" not in services["ch-ingest"]  # replicas cannot share a host port: the balancer has it
    balancer = services["ch-ingest-lb"]
    assert published(balancer) == [8000] and balancer["ports"][0].split(":")[-2] == "8100"
    assert balancer["depends_on"] == {"ch-ingest": {"condition": "service_healthy"}}
    conf_path = balancer["volumes"][0].split(":")[0]
    conf = (DEPLOY / conf_path).read_text()
    assert "listen 8000;" in conf and "http://ch-ingest:8000" in conf
    assert "resolver 127.0.0.11" in conf  # re-resolved, so replicas added by --scale get traffic


def test_both_stacks_publish_distinct_host_ports_on_loopback_unless_told_otherwise() -> None:
    host_ports: list[str] = []
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${AGENTTRACER_PUBLISH_ADDR:-127.0.0.1}:"), (name, port)
            host_ports.append(port.split(":")[-2])
    assert len(host_ports) == len(set(host_ports)), host_ports


def test_the_image_can_reach_a_clickhouse_server_without_the_embedded_engine() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [d.split(">")[0] for d in extras["clickhouse-client"]] == ["clickhouse-connect"]
    assert "agenttracer[clickhouse-client]" in extras["clickhouse"]  # one definition of the client's version
    install = re.search(r'pip install "\.\[([^\]]+)\]"', DOCKERFILE.read_text())
    assert install is not None and set(install.group(1).split(",")) == {"server", "clickhouse-client"}


def test_prometheus_scrapes_the_clickhouse_apps_too() -> None:
    config = yaml.safe_load((DEPLOY / "observability" / "prometheus.yml").read_text())
    names = {job["job_name"]: job["dns_sd_configs"][0]["names"] for job in config["scrape_configs"]}
    assert "ch-ingest" in names["agenttracer-ingest"] and "ch-query" in names["agenttracer-query"]
    services = compose()["services"]
    assert all(name in services for listed in names.values() for name in listed)
