"""The frameworks the dev extra installs, run live: each scenario's agent exports straight to a real
Ingest API (on PostgreSQL) and must reach the same verdict as its recording.

The agents are the recorder's own (tests/conformance/record/frameworks), each in a process of its
own (instrumentors are process-global), all four scenarios at once, against the loopback fake
OpenAI-compatible model; the Vercel AI SDK runs under node with its mock model. Each scenario's runs
carry an agent version of their own, which is how the test finds them. Then the same canary scan as
the replay: nothing of the content may be stored, logged or answered.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import string
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conformance.conftest import CorpusServer
from tests.conformance.expected import expected_for, problems
from tests.conformance.record.context import VERSION_VARIABLE
from tests.conformance.record.frameworks import FRAMEWORKS, NODE_DIR, command
from tests.conformance.record.loopback import fake_openai
from tests.conformance.record.scenarios import CANARY_PREFIX, SCENARIOS, TOOL_NAME
from tests.conformance.test_replay import GAPS
from tests.server.otlp_support import stored_text
from tests.support.db import missing

ROOT = Path(__file__).resolve().parents[2]
# One database is enough here: the replay tests already hold every recording to its verdict on both, and
# the live runs cost minutes (a dozen framework processes). PostgreSQL: what production runs on.
pytestmark = pytest.mark.parametrize("corpus_server", ["postgresql"], indirect=True)
# Framework -> a module it needs: what the dev extra installs (the others are recorded only).
LIVE = {
    "pydantic-ai": "pydantic_ai.models.openai",
    "openai-agents-native": "agents",
    "openai-agents-openinference": "openinference.instrumentation.openai_agents",
    "langgraph-native": "langchain_openai",
    "langgraph-openinference": "langchain_openai",
    "vercel-ai": "",
}
VERSION_LETTERS = 12


def _live_version() -> str:
    """A fresh agent version for one live run, of letters only. Digits would make it fail the privacy
    policy now and then (``live-4155550132`` is a North American telephone number): the SDK then refuses
    to start and an OTLP run is stored without its version, so the test could not find it."""
    return "live-" + "".join(random.choices(string.ascii_lowercase, k=VERSION_LETTERS))


def _available(framework: str) -> bool:
    if framework == "vercel-ai":
        return shutil.which("node") is not None and (NODE_DIR / "node_modules" / "ai").is_dir()
    try:
        return importlib.util.find_spec(LIVE[framework]) is not None
    except ModuleNotFoundError:
        return False


def _run(framework: str, scenario: str, ingest_url: str, model_url: str, version: str) -> tuple[str, int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **FRAMEWORKS[framework].get("env", {}))
    env[VERSION_VARIABLE] = version
    cmd = command(framework, scenario, ingest_url, f"{model_url}/{version}/{scenario}/v1", env)
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    return version, done.returncode, done.stderr[-3000:]


@pytest.fixture(scope="module")
def live_runs(corpus_server: CorpusServer) -> Iterator[dict[tuple[str, str], str]]:
    """Runs every available live framework in every scenario; yields (framework, scenario) -> version."""
    versions = {(f, s): _live_version() for f in LIVE if _available(f) for s in SCENARIOS}
    with fake_openai() as (model_url, _), ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(_run, *key, corpus_server.ingest_url, model_url, version)
                   for key, version in versions.items()}
        for key, future in futures.items():
            _, returncode, stderr = future.result()
            assert returncode == 0, (key, stderr)
    yield versions


def _cases() -> list[Any]:
    cases = []
    for framework in LIVE:
        for scenario in SCENARIOS:
            gap = GAPS.get((framework, scenario))
            marks = [pytest.mark.slow]
            if gap:
                marks.append(pytest.mark.xfail(strict=True, reason=gap))
            cases.append(pytest.param(framework, scenario, id=f"{framework}/{scenario}", marks=marks))
    return cases


def _diagnosis(server: CorpusServer, listing: httpx.Response) -> str:
    """What was stored instead, for a version whose runs list is not one run: every export was
    acknowledged before the fixture returned, so its run must be readable at once."""
    newest = httpx.get(f"{server.query_url}/v1/runs", params={"limit": 40}).json()["items"]
    stored = [(r["agent_id"], r["agent_version"], r["status"], r["started_at"]) for r in newest]
    return (f"listed {listing.text[:500]}; the newest runs stored: {stored}; "
            f"the servers' log ends: {server.log.getvalue()[-3000:]}")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("framework", "scenario"), _cases())
def test_live_framework_reaches_the_expected_verdict(framework: str, scenario: str, corpus_server: CorpusServer,
                                                     live_runs: dict[tuple[str, str], str]) -> None:
    if (framework, scenario) not in live_runs:
        missing(f"{framework} is not installed here (the dev extra installs it; vercel-ai needs `npm ci` in "
                f"{NODE_DIR.relative_to(ROOT)})")
    query = corpus_server.query_url
    listing = httpx.get(f"{query}/v1/runs", params={"agent_version": live_runs[framework, scenario], "limit": 10})
    assert listing.status_code == 200, listing.text
    assert len(listing.json()["items"]) == 1, _diagnosis(corpus_server, listing)  # one agent invocation, one run
    (run,) = listing.json()["items"]
    detail = httpx.get(f"{query}/v1/runs/{run['run_id']}", params={"limit": 1000})
    assert detail.status_code == 200, detail.text

    stored = stored_text(corpus_server.db_url)
    assert TOOL_NAME in stored  # the scan reads what was stored: it cannot pass on an empty text
    for text in (stored, corpus_server.log.getvalue(), listing.text, detail.text):  # type: ignore[attr-defined]
        assert CANARY_PREFIX not in text.lower()
    assert problems(detail.json(), expected_for(framework, scenario)) == []
