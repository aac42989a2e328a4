"""What `agenttracer copy` does, over two ``Transfer`` objects: page, resume, verify.

``copy_runs`` walks the source's runs in the source's natural order a page at a time and imports each
page into the destination. After every page it writes a checkpoint (the source's position after the
page, an opaque string) to a small JSON state
file, so a copy that was interrupted continues from there when run again; the page being imported at
the interruption is imported again, which stores nothing twice (``Transfer.import_runs`` skips runs
already stored). A finished copy removes its state file: running it again walks everything and stores
only what is missing.

``verify`` compares, per project, the runs, steps and failures both stores hold, then a sample of runs
field by field (the sample is drawn uniformly over the runs this copy walked).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agenttracer.store.transfer import DEFAULT_PAGE_RUNS, StoredCounts, StoredRun, Transfer

DEFAULT_SAMPLE = 200
STATE_DIR = Path(".agenttracer")


def state_path(source_url: str, destination_url: str, directory: Path = STATE_DIR) -> Path:
    """The default checkpoint file of a copy from ``source_url`` to ``destination_url``. The URLs are
    hashed, so the file name carries no password."""
    digest = hashlib.sha256(f"{source_url}\n{destination_url}".encode()).hexdigest()[:16]
    return directory / f"copy-{digest}.json"


@dataclass
class CopyState:
    """The checkpoint: the source's position after the last page stored, and how many runs were walked
    until then."""

    after: str | None = None
    walked: int = 0

    @classmethod
    def load(cls, path: Path) -> CopyState:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(after=data.get("after"), walked=int(data.get("walked", 0)))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)  # a crash mid-write leaves the previous checkpoint, never half of one


@dataclass
class CopyReport:
    walked: int = 0
    copied_runs: int = 0
    copied_steps: int = 0
    skipped: int = 0
    sample: list[str] = field(default_factory=list)


def copy_runs(
    source: Transfer,
    destination: Transfer,
    state_file: Path,
    *,
    page_runs: int = DEFAULT_PAGE_RUNS,
    sample_size: int = DEFAULT_SAMPLE,
    on_page: Callable[[int], None] = lambda n: None,
    seed: int = 0,
) -> CopyReport:
    """Copy every run of ``source`` not yet in ``destination``, resuming from ``state_file``."""
    state = CopyState.load(state_file)
    report = CopyReport(walked=state.walked)
    rng = random.Random(seed)
    seen = 0
    # The next page is read from the source while the destination stores this one: the two stores wait
    # on their databases (and their drivers release the GIL) at different times.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="copy-export") as reading:
        ahead = reading.submit(source.export_runs, state.after, page_runs)
        while (exported := ahead.result()).runs:
            ahead = reading.submit(source.export_runs, exported.after, page_runs)
            page = exported.runs
            imported = destination.import_runs(page)
            report.copied_runs += imported.runs
            report.copied_steps += imported.steps
            report.skipped += len(imported.skipped)
            for item in page:  # reservoir sampling: every walked run equally likely to be checked
                seen += 1
                if len(report.sample) < sample_size:
                    report.sample.append(item.run.run_id)
                elif (slot := rng.randrange(seen)) < sample_size:
                    report.sample[slot] = item.run.run_id
            state.after = exported.after
            state.walked += len(page)
            report.walked = state.walked
            state.save(state_file)
            on_page(len(page))
    state_file.unlink(missing_ok=True)
    return report


@dataclass
class Mismatch:
    """One difference between the stores: which project or run, and what differs."""

    where: str
    what: str


def compare_counts(source: dict[str, StoredCounts], destination: dict[str, StoredCounts]) -> list[Mismatch]:
    out = []
    for project in sorted(set(source) | set(destination)):
        a, b = source.get(project, StoredCounts()), destination.get(project, StoredCounts())
        for name in ("runs", "steps", "failures"):
            if getattr(a, name) != getattr(b, name):
                out.append(Mismatch(f"project {project}", f"{name}: {getattr(a, name)} -> {getattr(b, name)}"))
    return out


def compare_runs(source: list[StoredRun], destination: list[StoredRun]) -> list[Mismatch]:
    """Field by field; values are named, never shown (a field holds what passed the privacy policy,
    but a report has no need of it)."""
    theirs = {item.run.run_id: item for item in destination}
    out = []
    for item in source:
        other = theirs.get(item.run.run_id)
        if other is None:
            out.append(Mismatch(f"run {item.run.run_id}", "missing"))
            continue
        out.extend(Mismatch(f"run {item.run.run_id}", what) for what in _differences(item, other))
    return out


def _differences(a: StoredRun, b: StoredRun) -> list[str]:
    out = [f"run.{name}" for name, value in asdict(a.run).items() if _differ(value, getattr(b.run, name))]
    if len(a.steps) != len(b.steps):
        return [*out, f"steps: {len(a.steps)} -> {len(b.steps)}"]
    for x, y in zip(a.steps, b.steps, strict=True):
        out.extend(f"step {x.seq}.{name}" for name, value in asdict(x).items() if _differ(value, getattr(y, name)))
    if (a.failure is None) != (b.failure is None):
        out.append("failure: present in one store only")
    elif a.failure is not None and b.failure is not None:
        out.extend(f"failure.{n}" for n, v in asdict(a.failure).items() if _differ(v, getattr(b.failure, n)))
    return out


def _differ(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) > 1e-9 * max(1.0, abs(a))
    return bool(a != b)


def verify(source: Transfer, destination: Transfer, sample: list[str]) -> list[Mismatch]:
    """Counts per project, then the sampled runs field by field."""
    found = compare_counts(source.counts(), destination.counts())
    if sample:
        found += compare_runs(source.runs_by_id(sample), destination.runs_by_id(sample))
    return found
