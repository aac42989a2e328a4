"""Settings: explicit arguments win over AGENTTRACER_* variables, which win over defaults; bad values are
clear errors at construction (the only moment the SDK may raise)."""

from __future__ import annotations

import pytest

from agenttracer import AgentTracer
from agenttracer.sdk.config import resolve_config
from agenttracer.sdk.sending import backoff_delay, parse_retry_after


def test_environment_variables_fill_what_the_code_leaves_out() -> None:
    env = {"AGENTTRACER_API_URL": "http://ingest.internal:8000/", "AGENTTRACER_API_KEY": "at_ingest_abc",
           "AGENTTRACER_AGENT_ID": "env-agent", "AGENTTRACER_ENVIRONMENT": "staging",
           "AGENTTRACER_MAX_QUEUE_SIZE": "500", "AGENTTRACER_FLUSH_INTERVAL": "0.5", "AGENTTRACER_ENABLED": "yes"}
    config = resolve_config({"agent_version": "v3", "environment": "production"}, env)
    assert (config.agent_id, config.agent_version, config.environment) == ("env-agent", "v3", "production")
    assert config.ingest_url == "http://ingest.internal:8000/v1/ingest"
    assert (config.api_key, config.max_queue_size, config.flush_interval, config.enabled) == (
        "at_ingest_abc", 500, 0.5, True)


def test_defaults() -> None:
    config = resolve_config({"agent_id": "a"}, {})
    assert (config.api_url, config.api_key, config.agent_version, config.environment) == (
        "http://localhost:8000", None, "unversioned", "development")
    assert (config.max_queue_size, config.batch_size, config.flush_interval, config.exit_timeout) == (
        10_000, 500, 1.0, 2.0)


@pytest.mark.parametrize(("explicit", "env", "message"), [
    ({}, {}, "agent_id is required"),
    ({"agent_id": "a", "api_url": "localhost:8000"}, {}, "api_url must start with http"),
    ({"agent_id": "a"}, {"AGENTTRACER_MAX_QUEUE_SIZE": "lots"}, "AGENTTRACER_MAX_QUEUE_SIZE must be an integer"),
    ({"agent_id": "a"}, {"AGENTTRACER_ENABLED": "maybe"}, "AGENTTRACER_ENABLED must be a boolean"),
    ({"agent_id": "a", "batch_size": 5000}, {}, "batch_size must be at most 1000"),
    ({"agent_id": "a", "timeout": -1}, {}, "timeout must be a positive"),
    ({"agent_id": "x" * 200}, {}, "agent_id must be a non-empty string of at most 128"),
])
def test_bad_settings_are_named_with_their_rule(explicit: dict, env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_config(explicit, env)


def test_an_identity_the_privacy_policy_refuses_is_a_clear_error_that_does_not_echo_it() -> None:
    # The server would refuse every run_start of such a tracer, orphaning its steps: say so at start-up.
    with pytest.raises(ValueError, match=r"agent_id is refused by the privacy policy \(email\)") as info:
        resolve_config({"agent_id": "jane.doe@example.com"}, {})
    assert "jane.doe" not in str(info.value)


def test_the_environment_can_switch_the_tracer_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTTRACER_ENABLED", "0")
    tracer = AgentTracer("a", "v1", "test")
    assert tracer.enabled is False and tracer._transport is None  # no worker thread either
    with tracer.start_run() as run, run.step("tool", "x"):
        pass
    assert run.run_id is None and tracer.stats().produced == 0


def test_a_run_id_can_be_supplied_but_must_fit() -> None:
    tracer = AgentTracer("a", "v1", "test", "http://127.0.0.1:9", enabled=False)
    tracer.enabled = True
    try:
        assert tracer.start_run(run_id="3b0c1f4e-0000-4000-8000-000000000001").run_id.endswith("0001")
        with pytest.raises(ValueError, match="run_id"):
            tracer.start_run(run_id="x" * 40)
    finally:
        tracer.shutdown(0.1)


@pytest.mark.parametrize(("header", "seconds"), [
    ("3", 3.0), ("0", 0.0), ("7200", 60.0), ("-5", 0.0), ("soon", None), (None, None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: go now
])
def test_retry_after_is_parsed_and_capped_at_60_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_backoff_doubles_with_jitter_and_stays_capped_through_a_long_outage() -> None:
    # Attempt numbers an hour-long outage with short Retry-After answers could reach, and far beyond.
    for attempt, low, high in [(0, 0.25, 0.5), (1, 0.5, 1.0), (3, 2.0, 4.0), (10, 15.0, 30.0), (5_000, 15.0, 30.0)]:
        delays = [backoff_delay(attempt, 30.0) for _ in range(200)]
        assert all(low <= d <= high for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 1  # jittered
