"""`agenttracer copy` PostgreSQL -> ClickHouse -> PostgreSQL on a generated data set: each leg timed, then
the three stores' answers compared.

Legs (``--legs``, default all, in this order; each reuses what an earlier invocation left):

1. ``load``: the data set into PostgreSQL (benchlib/loader.py: COPY, schema ``ds_<runs>`` of ``--pg-url``'s
   database; reused when already loaded), without rollups: every store then builds its own.
2. ``to-ch``: ``agenttracer copy --from PG --to chdb://DIR`` in a subprocess, timed (wall clock).
3. ``back``: ``agenttracer copy --from chdb://DIR --to PG_BACK``, into a fresh schema ``ds_<runs>`` of
   ``--back-url``'s database, timed.
4. ``compare``: the same reads on the three stores through the store interface (the Query API's reader):
   five pages of the runs list, a filtered list, the details of the listed runs and of runs drawn by id
   prefix, stats over 24 h and 30 days (all agents and one), the agents list and compare. Every value is
   compared: equal (floats to a relative 1e-9), or — percentiles read from rollups, which each store
   builds its own way — within the documented accuracy (docs/analytics.md: each within ~1 % of the
   exact value, so two stores within 2 % of each other); anything else is a difference, named by path.

The copy's own check (counts per project, a sample of runs field by field) runs at the end of each leg.

    .venv/bin/python bench/copy_round_trip.py --runs 100000 --chdb-dir /work/data/NAME/ch100k
    .venv/bin/python bench/copy_round_trip.py --runs 1000000 --legs compare     # on the legs run before
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from benchlib.dataset import DatasetSpec
from benchlib.harness import machine_description
from benchlib.loader import load_postgres
from benchlib.pg import ensure_database, libpq_dsn, schema_url

from agenttracer.store import open_store
from agenttracer.store.filters import RunFilters
from agenttracer.store.interface import Reader

LEGS = ("load", "to-ch", "back", "compare")
EXACT = 1e-9
ROLLUP_ACCURACY = 0.02
PERCENTILE_KEYS = {"p50", "p90", "p95", "p99", "median"}
AGENT, BASE, CANDIDATE = "support-bot", "2.5.0", "2.6.0"


def copy_leg(source: str, destination: str, state: Path) -> float:
    """One ``agenttracer copy`` in a subprocess (its output passes through); wall seconds."""
    t0 = time.perf_counter()
    command = [sys.executable, "-m", "agenttracer", "copy", "--from", source, "--to", destination,
               "--state", str(state)]
    done = subprocess.run(command, check=False)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"copy exited {done.returncode} after {took:.0f} s")
    return took


def answers(reader: Reader, spec: DatasetSpec, prefixes: list[str]) -> dict[str, Any]:
    """What the Query API would answer on this store, as plain data."""
    end = spec.end
    day = RunFilters(since=end - timedelta(days=1), until=end)
    month = RunFilters(since=end - timedelta(days=30), until=end)
    out: dict[str, Any] = {}
    cursor = None
    ids: list[str] = []
    for page in range(5):
        items, cursor = reader.list_runs(RunFilters(), limit=50, cursor=cursor)
        out[f"runs/page{page}"] = items
        ids += [item["run_id"] for item in items]
    failing = RunFilters(agent_id=AGENT, status="failure", since=month.since, until=end)
    out["runs/failures"] = reader.list_runs(failing, limit=50)[0]
    for prefix in prefixes:
        ids += reader.runs_with_prefix(prefix, 2)
    for run_id in sorted(set(ids)):
        out[f"run/{run_id}"] = reader.get_run(run_id, steps_limit=100)
    out["stats/24h"] = reader.run_stats(day, end)
    out["stats/30d"] = reader.run_stats(month, end)
    out["stats/30d/agent"] = reader.run_stats(dataclasses.replace(month, agent_id=AGENT), end)
    out["agents"] = reader.list_agents()
    out["compare"] = reader.compare_versions(AGENT, BASE, CANDIDATE, since=month.since, until=end)
    return {key: _plain(value) for key, value in out.items()}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass
class Diff:
    equal: int = 0
    within: int = 0
    worst: float = 0.0
    exactness: list[str] = dataclasses.field(default_factory=list)
    different: list[str] = dataclasses.field(default_factory=list)


def diff(a: Any, b: Any, path: str, out: Diff) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.different.append(f"{path}.{key}: in one store only")
            else:
                diff(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.different.append(f"{path}: {len(a)} vs {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            diff(x, y, f"{path}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float) and not (math.isnan(a) or math.isnan(b)):
        rel = abs(a - b) / max(abs(a), abs(b), 1e-12)
        if rel <= EXACT:
            out.equal += 1
        elif rel <= ROLLUP_ACCURACY and path.rsplit(".", 1)[-1] in PERCENTILE_KEYS:
            out.within += 1
            out.worst = max(out.worst, rel)
        else:
            out.different.append(f"{path}: relative difference {rel:.2e}")
    elif a == b or (isinstance(a, float) and isinstance(b, float)):  # both NaN
        out.equal += 1
    elif path.endswith(".latency_exact"):  # one store read its rollups, the other its raw rows
        out.exactness.append(path)
    else:
        out.different.append(f"{path}: differs ({type(a).__name__} vs {type(b).__name__})")


def compare_stores(urls: dict[str, str], spec: DatasetSpec) -> int:
    rng = random.Random(7)
    prefixes = [f"{rng.randrange(16 ** 3):03x}" for _ in range(40)]
    found: dict[str, dict[str, Any]] = {}
    for name, url in urls.items():
        store = open_store(url)
        try:
            store.migrate()  # a store copied by an older checkout reads as this code expects
            t0 = time.perf_counter()
            with store.reader() as reader:
                found[name] = answers(reader, spec, prefixes)
            print(f"{name}: {len(found[name])} answers read in {time.perf_counter() - t0:.1f} s", flush=True)
        finally:
            store.close()
    names = list(urls)
    failed = 0
    details = sum(key.startswith("run/") for key in found[names[0]])
    print(f"compared: 5 runs-list pages + a filtered page, {details} run details, stats 24 h / 30 d / 30 d one "
          "agent, agents, compare")
    for first, other in itertools.combinations(names, 2):
        result = Diff()
        diff(found[first], found[other], other, result)
        print(f"{first} vs {other}: {result.equal:,} values equal, {result.within:,} percentiles within the "
              f"documented accuracy (worst {100 * result.worst:.2f} %), {len(result.different)} different; "
              f"percentiles from rollups on one side only: {', '.join(result.exactness) or 'nowhere'}")
        for line in result.different[:20]:
            print(f"   {line}")
        failed += bool(result.different)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/bench_copy")
    parser.add_argument("--back-url", default="postgresql://postgres@127.0.0.1:5432/bench_copy_back")
    parser.add_argument("--chdb-dir", type=Path, default=Path("/tmp/agenttracer-bench-copy-ch"))
    parser.add_argument("--legs", default=",".join(LEGS), help=f"comma-separated, of {', '.join(LEGS)}")
    parser.add_argument("--compare", default="postgresql,clickhouse,postgresql-back",
                        help="the stores the compare leg reads (a leg not run yet leaves its store out)")
    args = parser.parse_args()
    legs = args.legs.split(",")
    spec = DatasetSpec(runs=args.runs)
    schema = f"ds_{args.runs}"
    source = schema_url(args.pg_url, schema)
    clickhouse = f"chdb://{args.chdb_dir}"
    back = schema_url(args.back_url, schema)
    state_dir = args.chdb_dir.parent
    print(machine_description(), flush=True)
    if "load" in legs:
        loaded = load_postgres(args.pg_url, spec, rollups=False)
        print(f"load: {loaded.runs:,} runs, {loaded.steps:,} steps into PostgreSQL: {loaded.detail}", flush=True)
    if "to-ch" in legs:
        took = copy_leg(source, clickhouse, state_dir / f"copy-to-ch-{args.runs}.json")
        print(f"to-ch: PostgreSQL -> ClickHouse in {took:.0f} s ({args.runs / took:,.0f} runs/s)", flush=True)
    if "back" in legs:
        ensure_database(args.back_url)
        with psycopg.connect(libpq_dsn(args.back_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
        state = state_dir / f"copy-back-{args.runs}.json"
        state.unlink(missing_ok=True)  # the schema is new: nothing to resume
        took = copy_leg(clickhouse, back, state)
        print(f"back: ClickHouse -> PostgreSQL in {took:.0f} s ({args.runs / took:,.0f} runs/s)", flush=True)
    if "compare" in legs:
        stores = {"postgresql": source, "clickhouse": clickhouse, "postgresql-back": back}
        chosen = {name: stores[name] for name in args.compare.split(",")}
        return 1 if compare_stores(chosen, spec) else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
