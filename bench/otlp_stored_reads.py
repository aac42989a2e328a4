"""What the ClickHouse OTLP writer's reads of a large stored trace cost, without the server around them.

The stored trace of ``bench/otlp_late_span.py`` (``--steps`` spans, one run, one in 1,000 an error, loaded
in a process of its own into an embedded chdb directory), then ``otlp_stored.read_stored`` — everything
the writer reads of the stored run for a 1-span request that starts before every stored step — called
``--repeat`` times in one process per side and case. Two cases: an ``ok`` span (the run's error and
retry steps are read) and an ``error`` span of an action that failed before (its neighbours too).

``--base SRC`` runs the same calls with a checkout of the previous code (its ``src`` directory), on the
same directory; the sides alternate ``--rounds`` times so the box's load falls on both. The table shows
the median of each side's calls over all rounds (ms), the statements per call and the ratio.

    .venv/bin/python bench/otlp_stored_reads.py --base /tmp/base/src --rounds 3 --repeat 15
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.harness import fmt, machine_description, print_table
from otlp_late_span import ROOT_SPAN, RUN_ID, T0, side_env

CASES = {"ok": ("tool_1", False), "error": ("tool_0", True)}


def measure(url: str, case: str, repeat: int) -> None:
    """In this process (the side's code on the path): time ``read_stored`` ``repeat`` times; print JSON."""
    from agenttracer.store.clickhouse.connection import connect
    from agenttracer.store.clickhouse.write import otlp_stored
    from agenttracer.store.otlp_assemble import SpanRecord

    name, error = CASES[case]
    start = T0 - timedelta(seconds=1)
    span = SpanRecord(
        run_id=RUN_ID, span_id="f" * 16, parent_span_id=ROOT_SPAN.hex(), step_type="tool", name=name,
        started_at=start, ended_at=start + timedelta(milliseconds=3), latency_ms=3.0, error=error,
        error_class=None, failure_code="timeout" if error else None, explicit_attempt=None, agent_name=None,
        agent_version=None, meta={}, dropped=0,
    )  # fmt: skip
    conn = connect(url)
    statements = 0
    query = conn.query

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal statements
        statements += 1
        return query(*args, **kwargs)

    conn.query = counted  # type: ignore[method-assign]
    seconds = []
    for _ in range(repeat):
        statements = 0
        t0 = time.perf_counter()
        otlp_stored.read_stored(conn, "default", RUN_ID, [span])
        seconds.append(time.perf_counter() - t0)
    conn.close()
    print(json.dumps({"seconds": seconds, "statements": statements}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", help="src directory of the previous code, measured side by side")
    parser.add_argument("--measure", nargs=2, metavar=("URL", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], args.measure[1], args.repeat)
        return
    print(machine_description())
    sides = [("previous", args.base), ("this", None)] if args.base else [("this", None)]
    tmp = Path(tempfile.mkdtemp(prefix="at_bench_reads_chdb_"))
    url = f"chdb://{tmp.as_posix()}?database=late"
    try:
        migrate = ("import sys; from agenttracer.store import open_store; s = open_store(sys.argv[1]); s.migrate();"
                   " s.close()")
        subprocess.run([sys.executable, "-c", migrate, url], env=side_env(None), check=True)
        late = Path(__file__).resolve().parent / "otlp_late_span.py"
        subprocess.run([sys.executable, str(late), "--load-chdb", url, "--steps", str(args.steps)], check=True)
        seconds: dict[tuple[str, str], list[float]] = {}
        statements: dict[tuple[str, str], int] = {}
        for _ in range(args.rounds):
            for case in CASES:
                for label, src in sides:
                    out = subprocess.run(
                        [sys.executable, __file__, "--measure", url, case, "--repeat", str(args.repeat)],
                        env=side_env(src), check=True, capture_output=True, text=True,
                    ).stdout
                    got = json.loads(out.strip().splitlines()[-1])
                    seconds.setdefault((case, label), []).extend(got["seconds"])
                    statements[(case, label)] = got["statements"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for case in CASES:
        base = statistics.median(seconds[(case, sides[0][0])])
        for label, _ in sides:
            median = statistics.median(seconds[(case, label)])
            rows.append([case, label, fmt(median * 1000), str(statements[(case, label)]), f"{median / base:.2f}"])
    print_table(f"read_stored for a 1-span request against a {args.steps:,}-span stored trace "
                f"(ms, median of {args.rounds} x {args.repeat} calls per side)",
                ["late span", "code", "median", "statements", "vs first"], rows)  # fmt: skip


if __name__ == "__main__":
    main()
