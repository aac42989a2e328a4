"""The image's Python stage, without Docker: build the package from exactly the files the Dockerfile
copies, install it (not in editable mode), and run the container's first command from it.

This catches what an editable development install hides: a migration file missing from the
package data, or a file the build needs that the Dockerfile does not copy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

pytestmark = pytest.mark.slow


def copied_sources() -> list[str]:
    """Sources of the final stage's COPY lines (those not taken from another stage)."""
    final_stage = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    return [src for m in re.finditer(r"^COPY (?!--from)(.+) \S+$", final_stage, re.M) for src in m.group(1).split()]


def test_the_package_built_from_the_dockerfile_inputs_migrates_a_database(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in copied_sources():
        src = ROOT / source.rstrip("/")
        if src.is_dir():
            skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(src, context / source.rstrip("/"), ignore=skip)
        else:
            shutil.copy2(src, context / source)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("agenttracer-*.whl"))
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr

    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of the working tree
    env["AGENTTRACER_DATABASE_URL"] = f"sqlite:///{(tmp_path / 'image.db').as_posix()}"
    where = subprocess.run([sys.executable, "-c", "import agenttracer; print(agenttracer.__file__)"],
                           env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    migrate = subprocess.run([sys.executable, "-m", "agenttracer", "migrate"],
                             env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert migrate.returncode == 0, migrate.stderr
    assert (tmp_path / "image.db").stat().st_size > 0
