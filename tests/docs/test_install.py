"""The README's install-from-a-checkout command, run as written in a fresh virtualenv: the extra installs
and its integration imports. Slow (it installs from the package registry)."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMAND = re.compile(r"^pip install -e '/path/to/agenttracer(\[[a-z,-]+\])'$", re.M)


def test_the_readme_says_how_to_install_from_a_checkout() -> None:
    text = (ROOT / "README.md").read_text()
    assert COMMAND.search(text), "README.md lost its install-from-a-checkout command"
    assert "is not on a package index" in text


@pytest.mark.slow
def test_the_documented_command_installs_the_otel_extra(tmp_path: Path) -> None:
    match = COMMAND.search((ROOT / "README.md").read_text())
    assert match is not None
    venv.create(tmp_path / "v", with_pip=True)
    python = tmp_path / "v" / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e",
               f"{ROOT}{match.group(1)}"]
    done = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = ("from agenttracer.integrations.otel import MetadataOnlySpanExporter; import agenttracer; "
             "print(agenttracer.__file__)")
    ran = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() == str(ROOT / "src" / "agenttracer" / "__init__.py")
