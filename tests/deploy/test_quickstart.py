"""The spec's Quick Start, step 2, as a new user types it: a fresh virtualenv,
``pip install -r requirements.txt`` from the repository root, then an example run with
``PYTHONPATH=.`` — delivering its runs to a real Ingest API (here on a free port instead of :8000).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from agenttracer.store.sql.schema.tables import runs

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite"])
def test_requirements_then_the_example_sends_runs(live_ingest: str, engine: sa.Engine, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTTRACER_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PYTHONPATH=".", AGENTTRACER_API_URL=live_ingest)
    example = subprocess.run([str(python), "examples/customer_support_agent.py"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert example.returncode == 0, example.stderr
    # The SDK alone is enough for an agent: no server-side libraries in the user's environment.
    probe = subprocess.run([str(python), "-c", "import fastapi"], capture_output=True, timeout=60)
    assert probe.returncode != 0
    with engine.connect() as conn:
        stored = conn.execute(sa.select(runs.c.agent_id, runs.c.status)).all()
    assert stored and {agent for agent, _ in stored} == {"support-agent"}
