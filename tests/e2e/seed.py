"""What the browser tests see: the spec's examples run through the SDK, plus a fleet of runs sent to
the real Ingest API as wire events (for what the examples do not cover).

It covers every view: a run whose tool step timed out and was retried (attempt 2 linked to attempt 1),
a run that failed on a tool timeout with a message, a model failure, a running run, an agent and a
step whose names are HTML, metadata the privacy policy removes, and two versions of one agent with a
clear difference (the candidate fails on retrieval much more often and its model step is slower) so
that the comparison has significant results.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from tests.support.rundata import RunSpec, StepSpec, events

HTML_NAME = "<script>window.__pwned=1</script>"


@dataclass
class Fleet:
    retried: RunSpec
    tool_timeout: RunSpec
    model_failure: RunSpec
    html: RunSpec
    running: RunSpec
    base_runs: list[RunSpec]
    candidate_runs: list[RunSpec]

    def all(self) -> list[RunSpec]:
        fixed = [self.retried, self.tool_timeout, self.model_failure, self.html, self.running]
        return [*fixed, *self.base_runs, *self.candidate_runs]


def build_fleet(now: datetime | None = None) -> Fleet:
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    rnd = random.Random(7)
    m = timedelta(minutes=1)

    def version_run(version: str, i: int, fail: bool, llm_ms: float) -> RunSpec:
        start = now - timedelta(hours=20) + i * 17 * m + (m if version == "v1.1.0" else 0 * m)
        llm = llm_ms * rnd.uniform(0.8, 1.2)
        steps = [
            StepSpec(1, "plan", "analyze_query", 0, rnd.uniform(20, 40)),
            StepSpec(2, "retrieval", "kb_search", 45, 80, status="error" if fail else "ok",
                     error_class="LookupError" if fail else None, failure_code="empty_result" if fail else None),
        ]
        if not fail:
            steps += [
                StepSpec(3, "llm", "draft_answer", 130, llm),
                StepSpec(4, "respond", "generate_response", 135 + llm, 30),
            ]
        return RunSpec(
            "support-agent", version, "production", start, "failure" if fail else "success", steps,
            failure={"failure_type": "retrieval", "failure_code": "empty_result", "step_seq": 2} if fail else None,
        )

    base_runs = [version_run("v1.0.0", i, fail=i % 10 == 0, llm_ms=400) for i in range(30)]
    candidate_runs = [version_run("v1.1.0", i, fail=i % 2 == 0, llm_ms=900) for i in range(30)]

    retried = RunSpec(
        "support-agent", "v1.0.0", "production", now - timedelta(minutes=50), "success",
        [
            StepSpec(1, "plan", "analyze_query", 0, 40),
            StepSpec(2, "tool", "billing_api", 45, 300, status="error", error_class="TimeoutError",
                     failure_code="timeout", meta={"http_status": 504}),
            StepSpec(3, "tool", "billing_api", 380, 250, attempt=2, retry_of_seq=2, meta={"http_status": 200}),
            StepSpec(4, "llm", "draft_answer", 640, 500, meta={"model": "gpt-4o-mini", "tokens_in": 812}),
            StepSpec(5, "respond", "generate_response", 1150, 60),
        ],
        meta={"region": "eu-west-1", "prompt": "what is my balance?"},
    )
    tool_timeout = RunSpec(
        "support-agent", "v1.0.0", "production", now - timedelta(minutes=40), "failure",
        [
            StepSpec(1, "plan", "analyze", 0, 30),
            StepSpec(2, "tool", "external_api", 35, 900, status="error", error_class="TimeoutError",
                     failure_code="timeout"),
        ],
        failure={"failure_type": "tool", "failure_code": "timeout", "step_seq": 2,
                 "message": "External API timeout after 30s"},
    )
    model_failure = RunSpec(
        "research-agent", "v2.3.0", "staging", now - timedelta(minutes=30), "failure",
        [
            StepSpec(1, "plan", "outline", 0, 25),
            StepSpec(2, "llm", "summarize", 30, 45, status="error", error_class="RateLimitError",
                     failure_code="rate_limited"),
        ],
        failure={"failure_type": "model", "failure_code": "rate_limited", "step_seq": 2},
    )
    html = RunSpec(HTML_NAME, "v0.1.0", "production", now - timedelta(minutes=20), "success",
                   [StepSpec(1, "tool", HTML_NAME, 0, 12)])
    running = RunSpec("research-agent", "v2.3.0", "production", now - timedelta(minutes=1), "running",
                      [StepSpec(1, "retrieval", "web_search", 0, 15)])
    return Fleet(retried, tool_timeout, model_failure, html, running, base_runs, candidate_runs)


def send(ingest_url: str, runs: list[RunSpec], key: str | None = None) -> None:
    """POST the runs' events to the Ingest API and insist that every event was accepted."""
    batch = [ev for run in runs for ev in events(run)]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    for i in range(0, len(batch), 500):
        res = httpx.post(f"{ingest_url}/v1/ingest", json={"events": batch[i : i + 500]}, headers=headers, timeout=30)
        assert res.status_code == 200, res.text
        body = res.json()
        rejected = [r for r in body.get("results", []) if r.get("status") not in ("accepted", "duplicate")]
        assert not rejected, rejected


REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ("customer_support_agent.py", "agent_with_failures.py")


def run_examples(ingest_url: str) -> dict[str, str]:
    """Run the spec's examples (through the SDK) against ``ingest_url``; return each one's output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update({"AGENTTRACER_API_URL": ingest_url, "PYTHONPATH": str(REPO)})
    outputs = {}
    for name in EXAMPLES:
        done = subprocess.run(
            [sys.executable, str(REPO / "examples" / name)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
        outputs[name] = done.stdout
    return outputs
