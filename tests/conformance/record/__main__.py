"""Re-records the corpus: ``python -m tests.conformance.record [FRAMEWORK ...] [--scenario NAME ...]``.

For each framework and scenario it starts a fresh process (``run_one``) pointed at a loopback receiver
and a private script of the loopback fake model, then writes what the receiver got to
``tests/conformance/recordings/<framework>/<scenario>.json``: every request's path, content type,
content encoding and body (base64, byte for byte as the exporter sent it), the framework's package
versions and the canaries. No network is used; the expected verdicts live in ``expected.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.conformance.record.frameworks import FRAMEWORKS, NODE_DIR, command
from tests.conformance.record.loopback import fake_openai, receiver
from tests.conformance.record.scenarios import CANARIES, SCENARIOS

ROOT = Path(__file__).resolve().parents[3]
RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"


def _versions(packages: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in packages:
        if name == "node":
            lock = json.loads((NODE_DIR / "package-lock.json").read_text())["packages"]
            direct = lock[""]["dependencies"]
            found.update({dep: lock[f"node_modules/{dep}"]["version"] for dep in direct})
            found["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
            continue
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def _installed(framework: str) -> bool:
    return "missing" not in _versions(FRAMEWORKS[framework]["packages"][:1]).values()


def record(framework: str, scenario: str, receiver_url: str, received: Any, model_url: str) -> Path:
    spec = FRAMEWORKS[framework]
    received.take()
    key = uuid.uuid4().hex[:8]
    env = dict(os.environ, PYTHONPATH=str(ROOT), **spec.get("env", {}))
    started = time.monotonic()
    done = subprocess.run(command(framework, scenario, receiver_url, f"{model_url}/{key}/{scenario}/v1", env),
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{framework}/{scenario} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    time.sleep(0.2)  # the last export's answer was sent before the process exited; let the handler finish
    requests = received.take()
    if not requests:
        raise SystemExit(f"{framework}/{scenario} exported nothing:\n{done.stderr[-4000:]}")
    out = RECORDINGS / framework / f"{scenario}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    recording = {
        "framework": framework,
        "scenario": scenario,
        "kind": spec["kind"],
        "recorded_with": _versions(spec["packages"]),
        "canaries": sorted(CANARIES.values()),
        "requests": requests,
    }
    out.write_text(json.dumps(recording, indent=1, sort_keys=True) + "\n")
    print(f"{framework}/{scenario}: {len(requests)} requests in {time.monotonic() - started:.1f}s -> "
          f"{out.relative_to(ROOT)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("frameworks", nargs="*", choices=[*FRAMEWORKS, []],
                        help="default: every framework installed in this virtualenv")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all four")
    args = parser.parse_args()
    if any(f == "vercel-ai" for f in args.frameworks or [f for f in FRAMEWORKS if _installed(f)]):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True)
    with receiver() as (receiver_url, received), fake_openai() as (model_url, _):
        for framework in args.frameworks or [f for f in FRAMEWORKS if _installed(f)]:
            for scenario in args.scenario or SCENARIOS:
                record(framework, scenario, receiver_url, received, model_url)


if __name__ == "__main__":
    main()
