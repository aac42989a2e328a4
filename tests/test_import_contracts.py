"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and the checker really sees the graph.

``make test`` runs ``lint-imports`` before pytest; this test runs it too, so a broken contract is
visible in the pytest report with the chain of imports that breaks it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_every_contract_is_kept() -> None:
    # Each contract's name line follows its [[tool.importlinter.contracts]] header (tomllib needs 3.11).
    pyproject = (ROOT / "pyproject.toml").read_text()
    names = re.findall(r'^\[\[tool\.importlinter\.contracts\]\]\nname = "([^"]+)"$', pyproject, re.M)
    assert len(names) >= 5
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    for name in names:
        assert f"{name} KEPT" in result.stdout


def test_a_contract_against_an_import_that_exists_is_reported_broken(tmp_path: Path) -> None:
    # The Query API does read through the store interface: forbidding that must fail, naming the chain.
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["agenttracer"]\n\n'
        '[[tool.importlinter.contracts]]\nname = "probe"\ntype = "forbidden"\n'
        'source_modules = ["agenttracer.server.query"]\nforbidden_modules = ["agenttracer.store.interface"]\n'
    )
    result = run("--config", str(config))
    assert result.returncode != 0
    assert "probe BROKEN" in result.stdout
    assert "agenttracer.server.query.app -> agenttracer.store.interface" in result.stdout
