"""The agent-level series keep at most the cap of label combinations, whatever clients send.

10,000 distinct agent ids go through the real Ingest API: each family ends with exactly the cap of
series (``other`` included) and every observation beyond it is counted as folded, not lost. A burst of
junk ids holds the cap only until it has been idle for the idle time: then new agents take the places
of the least recently updated combinations, and the ``/metrics`` body stays bounded by the cap.
"""

from __future__ import annotations

import dataclasses
import threading

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agenttracer.server import ingest
from agenttracer.server.agent_series import OTHER, STEP_BUCKETS, AgentSeries, bucket_of
from agenttracer.server.settings import Settings
from tests.support import events as ev
from tests.support.servers import serve_app

AGENTS = 10_000


def series(text: str, family: str) -> list[dict[str, str]]:
    out = []
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            out += [s.labels for s in fam.samples if s.name in (family, f"{family}_total", f"{family}_count")]
    return out


def test_ten_thousand_agent_ids_stay_at_the_cap(live_settings: Settings) -> None:
    cap = Settings().metrics_max_agent_series  # the shipped default
    with serve_app(ingest.create_app(live_settings)) as base, httpx.Client(timeout=60) as client:
        batch: list[dict[str, object]] = []
        for i in range(AGENTS):
            run_id = ev.new_run_id()
            ident = {"agent_id": f"agent-{i:05d}", "agent_version": "v1", "environment": "prod"}
            batch += [ev.run_start(run_id, **ident), ev.step(run_id, 1), ev.run_end(run_id, **ident)]
            if len(batch) >= 999 or i == AGENTS - 1:
                response = client.post(f"{base}/v1/ingest", json={"events": batch})
                assert response.status_code == 200 and response.json()["rejected"] == 0
                batch = []
        text = client.get(f"{base}/metrics").text

    for family in ("agenttracer_runs_finished", "agenttracer_step_latency_seconds"):
        labels = series(text, family)
        assert len(labels) == cap, family
        assert sum(1 for lab in labels if lab["agent_id"] == OTHER) == 1
    folded = {
        s.labels["metric"]: s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "agenttracer_agent_series_folded"
        for s in fam.samples
        if s.name.endswith("_total")
    }
    assert folded["agenttracer_runs_finished"] == AGENTS - (cap - 1)
    assert folded["agenttracer_step_latency_seconds"] == AGENTS - (cap - 1)
    # Nothing was lost: the runs under 'other' plus the kept ones are every run.
    runs = {
        tuple(sorted(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "agenttracer_runs_finished"
        for s in fam.samples
        if s.name.endswith("_total")
    }
    assert sum(runs.values()) == AGENTS


def test_the_cap_is_a_setting(live_settings: Settings) -> None:
    small = dataclasses.replace(live_settings, metrics_max_agent_series=3)
    with serve_app(ingest.create_app(small)) as base:
        for i in range(5):
            run_id = ev.new_run_id()
            ident = {"agent_id": f"a{i}", "agent_version": "v1", "environment": "prod"}
            events = [ev.run_start(run_id, **ident), ev.run_end(run_id, **ident)]
            httpx.post(f"{base}/v1/ingest", json={"events": events}, timeout=30)
        labels = series(httpx.get(f"{base}/metrics", timeout=10).text, "agenttracer_runs_finished")
    assert sorted(lab["agent_id"] for lab in labels) == ["a0", "a1", OTHER]


def test_known_combinations_keep_counting_after_the_cap() -> None:
    agents = AgentSeries(cap=2)
    key = ("default", "a", "v1", "prod", "success")
    agents.record({key: 1}, {}, {})
    agents.record({("default", "b", "v1", "prod", "success"): 4}, {}, {})
    agents.record({key: 2}, {}, {})
    runs = {tuple(s.labels.values()): s.value for fam in agents.collect() if fam.name == "agenttracer_runs_finished"
            for s in fam.samples}
    assert runs == {key: 3, (OTHER,) * 5: 4}
    assert agents.series_counts()["agenttracer_runs_finished"] == 2


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        AgentSeries(cap=0)


@pytest.mark.parametrize(("latency_ms", "bucket"), [(0.0, 0), (5.0, 0), (5.1, 1), (120_000.0, len(STEP_BUCKETS) - 1),
                                                    (120_500.0, len(STEP_BUCKETS))])
def test_bucket_bounds_are_inclusive(latency_ms: float, bucket: int) -> None:
    assert bucket_of(latency_ms) == bucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _runs(agents: AgentSeries) -> dict[str, float]:
    return {s.labels["agent_id"]: s.value for fam in agents.collect() if fam.name == "agenttracer_runs_finished"
            for s in fam.samples}


def _run_key(agent_id: str) -> tuple[str, ...]:
    return ("default", agent_id, "v1", "prod", "success")


def test_an_idle_combination_gives_its_place_least_recently_updated_first() -> None:
    clock = Clock()
    agents = AgentSeries(cap=3, idle_s=60, clock=clock)
    agents.record({_run_key("junk-1"): 1}, {}, {})
    clock.now += 10
    agents.record({_run_key("junk-2"): 1}, {}, {})
    clock.now += 49  # junk-1 idle 59 s: not yet
    agents.record({_run_key("real-1"): 5}, {}, {})
    assert _runs(agents) == {"junk-1": 1, "junk-2": 1, OTHER: 5}
    clock.now += 1  # junk-1 idle 60 s: the least recently updated gives way; junk-2 (50 s) stays
    agents.record({_run_key("real-1"): 2}, {}, {})
    assert _runs(agents) == {"junk-2": 1, "real-1": 2, OTHER: 5}
    agents.record({_run_key("real-2"): 1}, {}, {})
    assert _runs(agents)["real-2" if "real-2" in _runs(agents) else OTHER] >= 1
    assert "junk-2" in _runs(agents)  # idle 50 s only: real-2 was folded
    clock.now += 10
    agents.record({_run_key("real-2"): 1}, {}, {})  # junk-2 now idle 60 s
    assert _runs(agents) == {"real-1": 2, "real-2": 1, OTHER: 6}
    assert agents.series_counts()["agenttracer_runs_finished"] == 3


def test_an_update_keeps_a_combination_from_being_evicted() -> None:
    clock = Clock()
    agents = AgentSeries(cap=3, idle_s=60, clock=clock)
    agents.record({_run_key("a"): 1}, {}, {})
    agents.record({_run_key("b"): 1}, {}, {})
    clock.now += 59
    agents.record({_run_key("a"): 1}, {}, {})  # a is now the most recently updated
    clock.now += 1
    agents.record({_run_key("c"): 1}, {}, {})  # b (idle 60 s) goes, a stays
    assert _runs(agents) == {"a": 2, "c": 1}


def test_a_burst_of_junk_ids_does_not_pin_the_cap_and_metrics_stays_bounded(live_settings: Settings) -> None:
    cap, junk = 20, 2_000
    settings = dataclasses.replace(live_settings, metrics_max_agent_series=cap, metrics_agent_series_idle_seconds=1)
    with serve_app(ingest.create_app(settings)) as base, httpx.Client(timeout=60) as client:
        def send(agent_ids: list[str]) -> None:
            batch: list[dict[str, object]] = []
            for agent_id in agent_ids:
                run_id = ev.new_run_id()
                ident = {"agent_id": agent_id, "agent_version": "v1", "environment": "prod"}
                batch += [ev.run_start(run_id, **ident), ev.step(run_id, 1), ev.run_end(run_id, **ident)]
            for i in range(0, len(batch), 999):
                r = client.post(f"{base}/v1/ingest", json={"events": batch[i:i + 999]})
                assert r.status_code == 200 and r.json()["rejected"] == 0

        send([f"junk-{i:05d}" for i in range(junk)])
        full = client.get(f"{base}/metrics").text
        threading.Event().wait(1.1)  # the junk is now idle for longer than the idle time
        send(["real-agent"])
        text = client.get(f"{base}/metrics").text
    for family in ("agenttracer_runs_finished", "agenttracer_step_latency_seconds"):
        labels = series(text, family)
        assert len(labels) <= cap, family
        assert any(lab["agent_id"] == "real-agent" for lab in labels), family
    # Bounded by the cap, not by what was sent: 2,000 agents leave a body of about 2.5 KB per allowed
    # combination (one histogram of 16 buckets, one counter), as before the real agent came.
    for body in (full, text):
        assert len(body.encode()) < cap * 3_000
