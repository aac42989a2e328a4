"""Repetition, summary statistics and table printing shared by every benchmark script.

Every figure a benchmark prints is a summary over repeated runs (min / median / max), because the
machine is shared: the median of runs taken side by side is the number to quote, the spread says how
much to trust it.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The bench engineer's manual port range (TEAM.md): benchmarks never touch a colleague's ports.
# AGENTTRACER_BENCH_PORTS=FIRST-LAST moves it (another engineer running a benchmark on their own range).
_FIRST, _, _LAST = os.environ.get("AGENTTRACER_BENCH_PORTS", "18700-18799").partition("-")
PORT_RANGE = range(int(_FIRST), int(_LAST) + 1)


@dataclass(frozen=True)
class Summary:
    """min / median / max of repeated measurements of one figure."""

    values: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)


def summarize(values: Iterable[float]) -> Summary:
    vals = tuple(values)
    if not vals:
        raise ValueError("nothing was measured")
    return Summary(vals)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def fmt(value: float, digits: int = 1) -> str:
    """Thousands separators for big numbers, fixed decimals for small ones."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain aligned text table (readable in a terminal, in CI logs and pasted into docs)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    for cells in (headers, *rows):
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False))]
        print("  ".join(padded))
        if cells is headers:
            print(line)
    sys.stdout.flush()


def summary_cells(s: Summary, digits: int = 1) -> list[str]:
    return [fmt(s.min, digits), fmt(s.median, digits), fmt(s.max, digits)]


def free_port() -> int:
    """A free loopback port from the bench range."""
    for port in PORT_RANGE:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def wait_for_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200, the process dies, or the timeout passes."""
    import httpx

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s ({last})")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``: never leave a server behind."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def machine_description() -> str:
    """One line naming the machine the figures were taken on."""
    mem_gib = 0.0
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_gib = int(line.split()[1]) / 1024 / 1024
                    break
    except OSError:
        pass
    try:
        import sqlite3

        sqlite_version = sqlite3.sqlite_version
    except ImportError:  # pragma: no cover
        sqlite_version = "?"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {mem_gib:.1f} GiB RAM, Python {platform.python_version()}, "
        f"SQLite {sqlite_version}, load average {load:.2f} at start"
    )


def timed(fn: Callable[[], object]) -> float:
    """Seconds taken by one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def server_env() -> dict[str, str]:
    """The environment for a server subprocess: ours, with ``bench/`` importable (for benchlib.serve_app)."""
    bench_dir = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (bench_dir, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path)


def py_spy_record(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Start py-spy sampling process ``pid`` into ``output`` (raw folded stacks), until that process ends.

    py-spy is taken from beside this interpreter (the project's venv, where ``pip install -e .[dev]``
    puts it) before PATH, so ``--profile`` works without activating the venv.
    """
    beside = Path(sys.executable).with_name("py-spy")
    exe = str(beside) if beside.exists() else shutil.which("py-spy")
    if exe is None:
        raise SystemExit("--profile needs py-spy: install the dev extra (pip install -e '.[dev]')")
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--output", str(output),
         "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

