"""The abandonment sweep (store/sql/write/abandon.py): its cost per pass at 1 M runs on PostgreSQL, and the
ingest bar with it and without it, side by side in one run.

1. **Sweep cost.** A fresh schema in our own database (``at_sweep``) is migrated and filled with SQL
   (``generate_series``): ``--runs`` runs over the last weeks, mostly finished, ``--running`` of them still
   running — ``--abandoned`` quiet for two hours, the others written a minute ago — and ``--steps-per-run``
   steps each. Then, repeated ``--repeat`` times:

   - an *idle* pass (a cut-off before every running run's last write: nothing to close), the cost every
     ingest process pays every ``sweep_interval`` seconds;
   - a *full* pass closing ``--abandoned`` runs (the most one pass closes: BATCH_SIZE x MAX_BATCHES), after
     which the closed runs are made running again (and the table vacuumed) for the next repetition.

   The plan of the candidate query is printed: it must read the partial index of running runs.

2. **Ingest bar.** ``bench/ingest_throughput.py`` (end to end, ``agenttracer serve ingest`` as a real
   process, ``--via-cli``) is run once per repetition for each side: the code of this checkout, with a
   10-second run timeout so its sweep passes every second, and the previous code from ``--base`` (a
   checkout of the commit before the sweep, e.g. ``git worktree add /tmp/base <commit>``), each with its own
   migrations. The order alternates between repetitions; medians and the ratio new / old are printed.

    .venv/bin/python bench/abandon_sweep.py --base /tmp/base                 # both parts
    .venv/bin/python bench/abandon_sweep.py --no-ingest --runs 200000        # sweep cost only
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from benchlib.harness import fmt, machine_description, print_table, summarize, summary_cells
from benchlib.pg import ensure_database, server_settings, temporary_schema

from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from agenttracer.store.sql.write.abandon import BATCH_SIZE, MAX_BATCHES, sweep

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/at_sweep"
HERE = Path(__file__).resolve().parents[1]

_FILL_RUNS = """
INSERT INTO runs (run_id, agent_id, agent_version, environment, status, started_at, ended_at, duration_ms,
                  step_count, failure_type, failure_code, meta, ingested_at, updated_at, source)
SELECT md5(i::text)::uuid::text, 'agent-' || (i % 20), 'v' || (i % 3), 'production', st,
       t, CASE WHEN st = 'running' THEN NULL ELSE t + interval '30 seconds' END,
       CASE WHEN st = 'running' THEN NULL ELSE 30000.0 END, :steps,
       CASE WHEN st = 'failure' THEN 'tool' END, CASE WHEN st = 'failure' THEN 'timeout' END, '{}'::jsonb, t,
       CASE WHEN i <= :abandoned THEN :now - interval '2 hours'
            WHEN st = 'running' THEN :now - interval '1 minute'
            ELSE t + interval '31 seconds' END,
       'sdk'
FROM (SELECT i, :now - (i * interval '2 seconds') - interval '2 hours' AS t,
             CASE WHEN i <= :running THEN 'running' WHEN i % 10 = 0 THEN 'failure' ELSE 'success' END AS st
      FROM generate_series(1, :runs) AS i) AS g
"""
_FILL_STEPS = """
INSERT INTO steps (run_id, seq, step_type, name, status, started_at, ended_at, latency_ms, attempt, meta,
                   meta_removed)
SELECT r.run_id, s, 'tool', 'step_' || s, 'ok', r.started_at + s * interval '1 second',
       r.started_at + s * interval '1 second' + interval '500 milliseconds', 500.0, 1, '{}'::jsonb, 0
FROM runs r CROSS JOIN generate_series(1, :steps) AS s
"""
_REOPEN = """
UPDATE runs SET status = 'running', abandoned = false, ended_at = NULL, duration_ms = NULL, failure_type = NULL,
                failure_code = NULL, updated_at = :quiet
WHERE abandoned
"""


def fill(engine: sa.Engine, args: argparse.Namespace, now: datetime) -> float:
    t0 = time.perf_counter()
    params = {"now": now, "runs": args.runs, "running": args.running, "abandoned": args.abandoned,
              "steps": args.steps_per_run}
    with engine.begin() as conn:
        conn.execute(sa.text(_FILL_RUNS), params)
        conn.execute(sa.text(_FILL_STEPS), params)
    vacuum(engine)
    return time.perf_counter() - t0


def vacuum(engine: sa.Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE runs"))
        conn.execute(sa.text("VACUUM ANALYZE failures"))


def candidate_plan(engine: sa.Engine, cutoff: datetime) -> str:
    sql = ("EXPLAIN SELECT run_id FROM runs WHERE runs.status = 'running' AND updated_at < :cutoff"
           " ORDER BY updated_at LIMIT 500")
    with engine.connect() as conn:
        return "\n".join(f"    {row[0]}" for row in conn.execute(sa.text(sql), {"cutoff": cutoff}))


def sweep_cost(args: argparse.Namespace) -> list[list[str]]:
    rows: list[list[str]] = []
    with temporary_schema(args.pg_url, prefix="at_sweep_bench") as url:
        engine = make_engine(url)
        upgrade(engine)
        now = datetime.now(timezone.utc)
        took = fill(engine, args, now)
        print(f"filled {args.runs:,} runs ({args.running:,} running, {args.abandoned:,} of them quiet for 2 h) and "
              f"{args.runs * args.steps_per_run:,} steps in {took:.0f} s")
        print("candidate query plan:\n" + candidate_plan(engine, now - timedelta(hours=1)))
        idle_ms: list[float] = []
        full_s: list[float] = []
        per_run_us: list[float] = []
        batch_ms: list[float] = []
        for _ in range(args.repeat):
            for _ in range(10):
                idle = sweep(engine, timedelta(hours=3), now=now)
                assert not idle.closed
                idle_ms.append(idle.seconds * 1000.0)
            full = sweep(engine, timedelta(hours=1), now=now)
            if len(full.closed) != min(args.abandoned, BATCH_SIZE * MAX_BATCHES):
                raise SystemExit(f"a full pass closed {len(full.closed)} runs, expected {args.abandoned}")
            full_s.append(full.seconds)
            per_run_us.append(full.seconds / len(full.closed) * 1e6)
            batch_ms.append(full.seconds / full.batches * 1000.0)
            with engine.begin() as conn:
                conn.execute(sa.text(_REOPEN), {"quiet": now - timedelta(hours=2)})
                conn.execute(sa.text("DELETE FROM failures WHERE failure_code = 'abandoned'"))
                conn.execute(sa.text("DELETE FROM rollup_dirty"))
            vacuum(engine)
        engine.dispose()
    n = min(args.abandoned, BATCH_SIZE * MAX_BATCHES)
    rows.append(["idle pass, nothing to close (ms)", *summary_cells(summarize(idle_ms), 2)])
    rows.append([f"full pass closing {n:,} runs (s)", *summary_cells(summarize(full_s), 2)])
    rows.append([f"  per batch of {BATCH_SIZE} runs (ms)", *summary_cells(summarize(batch_ms), 1)])
    rows.append(["  per closed run (us)", *summary_cells(summarize(per_run_us), 0)])
    return rows


_FIGURES = ("end to end (steps/s)", "server CPU per step (us)", "database CPU per step (us)")
_E2E = re.compile(r"^(sqlite|postgresql): (" + "|".join(re.escape(f) for f in _FIGURES) + r")\s+\S+\s+(\S+)", re.M)


def ingest_once(tree: Path, backend: str, args: argparse.Namespace) -> dict[str, float]:
    """One repetition of bench/ingest_throughput.py with ``tree``'s code; its medians by figure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update(PYTHONPATH=str(tree / "src"), AGENTTRACER_RUN_TIMEOUT_S="10")
    cmd = [sys.executable, str(tree / "bench" / "ingest_throughput.py"), "--backend", backend, "--steps",
           str(args.ingest_steps), "--repeat", "1", "--no-floor", "--via-cli", "--pg-url", args.pg_url]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=False)
    found = {m.group(2): float(m.group(3).replace(",", "")) for m in _E2E.finditer(done.stdout)}
    if done.returncode != 0 or len(found) != (3 if backend == "postgresql" else 2):
        raise SystemExit(f"{tree}: ingest_throughput failed ({done.returncode}):\n{done.stdout[-2000:]}"
                         f"\n{done.stderr[-2000:]}")
    return found


def ingest_side_by_side(args: argparse.Namespace) -> list[list[str]]:
    base = Path(args.base).resolve()
    if not (base / "src" / "agenttracer").is_dir():
        raise SystemExit(f"--base {base}: not a checkout of the project")
    sides = {"previous": base, "this checkout": HERE}
    figures: dict[tuple[str, str, str], list[float]] = {}
    for rep in range(args.repeat):
        for backend in args.backend.split(","):
            order = list(sides.items()) if rep % 2 == 0 else list(reversed(sides.items()))
            for name, tree in order:
                for figure, value in ingest_once(tree, backend, args).items():
                    figures.setdefault((backend, figure, name), []).append(value)
                print(f"  rep {rep + 1} {backend} {name}: "
                      f"{fmt(figures[(backend, 'end to end (steps/s)', name)][-1], 0)} steps/s", flush=True)
    rows = []
    for backend in args.backend.split(","):
        for figure in _FIGURES:
            if (backend, figure, "previous") not in figures:
                continue
            old = summarize(figures[(backend, figure, "previous")]).median
            new = summarize(figures[(backend, figure, "this checkout")]).median
            rows.append([f"{backend}: {figure}", fmt(old, 1), fmt(new, 1), f"{new / old:.3f}"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get("AGENTTRACER_SWEEP_PG_URL", DEFAULT_URL))
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--running", type=int, default=20_000, help="runs still running")
    parser.add_argument("--abandoned", type=int, default=BATCH_SIZE * MAX_BATCHES,
                        help="running runs quiet past the timeout")
    parser.add_argument("--steps-per-run", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep-cost part")
    parser.add_argument("--no-ingest", action="store_true", help="skip the side-by-side ingest part")
    parser.add_argument("--base", help="a checkout of the previous code, for the ingest comparison")
    parser.add_argument("--backend", default="sqlite,postgresql")
    parser.add_argument("--ingest-steps", type=int, default=60_000)
    args = parser.parse_args()
    if args.running < args.abandoned:
        parser.error("--running must be at least --abandoned")
    print(f"machine: {machine_description()}")
    ensure_database(args.pg_url)
    print("postgresql: " + ", ".join(f"{k}={v}" for k, v in server_settings(args.pg_url).items()))
    if not args.no_sweep:
        rows = sweep_cost(args)
        print_table(f"Abandonment sweep on PostgreSQL at {args.runs:,} runs (min / median / max over "
                    f"{args.repeat} repetitions; idle: 10 passes each)", ["figure", "min", "median", "max"], rows)
    if not args.no_ingest:
        if not args.base:
            print("\n(no --base: the side-by-side ingest comparison is skipped)")
            return 0
        rows = ingest_side_by_side(args)
        print_table(f"Ingest end to end, previous code vs this checkout (its sweep passing every second), medians of "
                    f"{args.repeat} alternating repetitions", ["figure", "previous", "this checkout", "new / old"],
                    rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
