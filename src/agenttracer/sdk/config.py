"""The SDK's settings: constructor arguments first, then ``AGENTTRACER_*`` environment variables, then defaults.

Everything here is checked once, when the tracer is built, so that a wrong value is a clear error at
start-up instead of a surprise on the agent's hot path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from agenttracer import privacy
from agenttracer.model import (
    MAX_BATCH_EVENTS,
    MAX_ENVIRONMENT_LEN,
    MAX_ID_LEN,
    MAX_VERSION_LEN,
    PROJECT_RULE,
    is_valid_project,
)

ENV_PREFIX = "AGENTTRACER_"
DEFAULT_API_URL = "http://localhost:8000"

# name -> (environment variable suffix, default). Documented in docs/sdk.md; keep the two in step.
_DEFAULTS: dict[str, object] = {
    "api_url": DEFAULT_API_URL,
    "api_key": None,
    "agent_id": None,
    "agent_version": "unversioned",
    "environment": "development",
    # None: the server decides (the ingest key's project, else 'default').
    "project": None,
    "enabled": True,
    "max_queue_size": 10_000,
    "batch_size": 500,
    "flush_interval": 1.0,
    "timeout": 5.0,
    "exit_timeout": 2.0,
    "max_backoff": 30.0,
}


@dataclass(frozen=True)
class TracerConfig:
    """Resolved, validated settings of one tracer."""

    agent_id: str
    agent_version: str
    environment: str
    project: str | None
    api_url: str
    api_key: str | None
    enabled: bool
    max_queue_size: int
    batch_size: int
    flush_interval: float
    timeout: float
    exit_timeout: float
    max_backoff: float

    @property
    def ingest_url(self) -> str:
        return self.api_url.rstrip("/") + "/v1/ingest"


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{ENV_PREFIX}{name.upper()} must be a boolean (1/0, true/false)")


def _coerce(name: str, raw: object, from_env: bool) -> object:
    default = _DEFAULTS[name]
    where = f"{ENV_PREFIX}{name.upper()}" if from_env else name
    if isinstance(default, bool):
        if isinstance(raw, str):
            return _parse_bool(name, raw)
        if not isinstance(raw, bool):
            raise ValueError(f"{where} must be a boolean")
        return raw
    if isinstance(default, int):
        try:
            value = int(raw)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be an integer") from None
        if value < 1:
            raise ValueError(f"{where} must be at least 1")
        return value
    if isinstance(default, float):
        try:
            number = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be a number of seconds") from None
        if not number > 0 or number == float("inf"):
            raise ValueError(f"{where} must be a positive, finite number of seconds")
        return number
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError(f"{where} must be a string")
    return raw.strip()


def resolve_config(explicit: Mapping[str, object], environ: Mapping[str, str] | None = None) -> TracerConfig:
    """Merge explicit arguments (None means "not given"), environment variables and defaults; validate."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, default in _DEFAULTS.items():
        given = explicit.get(name)
        if given is not None:
            values[name] = _coerce(name, given, from_env=False)
            continue
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and raw.strip() != "":
            values[name] = _coerce(name, raw, from_env=True)
        else:
            values[name] = default

    agent_id = values["agent_id"]
    if not agent_id:
        raise ValueError(f"agent_id is required: pass AgentTracer(agent_id=...) or set {ENV_PREFIX}AGENT_ID")
    for name, limit in (("agent_id", MAX_ID_LEN), ("agent_version", MAX_VERSION_LEN),
                        ("environment", MAX_ENVIRONMENT_LEN)):
        value = values[name]
        if not isinstance(value, str) or not value or len(value) > limit:
            raise ValueError(f"{name} must be a non-empty string of at most {limit} characters")
        # The server refuses a run whose identity fails the privacy policy, which would orphan every
        # step of it; saying so here, once, is kinder than losing runs silently. The value is not echoed.
        _, reason = privacy.scrub_name(value)
        if reason is not None:
            raise ValueError(f"{name} is refused by the privacy policy ({reason}): use a plain identifier")
    project = values["project"]
    if project is not None and not is_valid_project(project):
        raise ValueError(f"project must be {PROJECT_RULE}")
    url = str(values["api_url"])
    if not url.startswith(("http://", "https://")):
        raise ValueError("api_url must start with http:// or https://")
    if int(values["batch_size"]) > MAX_BATCH_EVENTS:  # type: ignore[call-overload]
        raise ValueError(f"batch_size must be at most {MAX_BATCH_EVENTS} (the Ingest API's batch limit)")
    return TracerConfig(**values)  # type: ignore[arg-type]
