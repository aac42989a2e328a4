"""Where ``GET /v1/compare`` spends its time on the ClickHouse store (chdb): per statement, the engine's own
elapsed time and rows read against the call's wall and CPU time, medians over ``--samples`` calls.

Reads an existing data set (``clickhouse_at_scale.py`` builds ``ds_<runs>`` in ``--chdb-dir``): support-bot
2.5.0 against 2.6.0 over the data set's last 30 days, the read ``clickhouse_reads.py`` times. Run it with
``PYTHONPATH=<checkout>/src`` to profile another version of the store on the same data.

    .venv/bin/python bench/clickhouse_compare_profile.py --runs 1000000 --chdb-dir DIR --samples 15
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.dataset import DatasetSpec
from benchlib.harness import percentile

import agenttracer
from agenttracer.store.clickhouse.chdb_pool import ChdbConnection
from agenttracer.store.clickhouse.connection import connect
from agenttracer.store.clickhouse.read.session import ClickHouseReader


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--chdb-dir", required=True)
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--database", help="the data set's database (default ds_<runs>; clickhouse_at_scale.py "
                    "--copies N builds ds_<runs>xN)")
    ap.add_argument("--sql", action="store_true", help="print each statement's text once")
    args = ap.parse_args()
    spec = DatasetSpec(runs=args.runs)
    conn = connect(f"chdb://{args.chdb_dir}?database={args.database or f'ds_{args.runs}'}")
    log: list[tuple[str, float, int, float]] = []
    run = ChdbConnection._run

    def traced(self: ChdbConnection, sql: str, fmt: str, params: Any) -> Any:
        t0 = time.perf_counter()
        res = run(self, sql, fmt, params)
        log.append((sql, res.elapsed() * 1000, res.rows_read(), (time.perf_counter() - t0) * 1000))
        return res

    ChdbConnection._run = traced  # type: ignore[method-assign]
    reader = ClickHouseReader(conn)
    end = spec.end

    def call() -> Any:
        return reader.compare_versions("support-bot", "2.5.0", "2.6.0", since=end - timedelta(days=30), until=end)

    first = call()
    log.clear()
    walls, cpus, per_stmt = [], [], []
    for _ in range(args.samples):
        log.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        answer = call()
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
        per_stmt.append(list(log))
        assert answer == first, "answers differ between calls"
    digest = hashlib.sha256(repr(first).encode()).hexdigest()[:16]
    print(f"agenttracer from {Path(agenttracer.__file__).parent}; the answer's digest (repr) {digest}")
    p95 = percentile(sorted(walls), 95)
    print(f"compare, {args.samples} calls: wall p50 {statistics.median(walls):.1f} / p95 {p95:.1f} ms "
          f"(min {min(walls):.1f}), process CPU p50 {statistics.median(cpus):.1f} ms")
    n = min(len(s) for s in per_stmt)
    for i in range(n):
        sql = per_stmt[0][i][0]
        eng = statistics.median(s[i][1] for s in per_stmt)
        wall = statistics.median(s[i][3] for s in per_stmt)
        rows = per_stmt[0][i][2]
        print(f"  #{i + 1}: engine p50 {eng:7.1f} ms, statement wall p50 {wall:7.1f} ms, rows read {rows:>10,}  "
              f"{' '.join(sql.split())[:110]}")
        if args.sql:
            print("     ", " ".join(sql.split()))
    stmt_total = statistics.median(sum(x[3] for x in s) for s in per_stmt)
    rest = statistics.median(walls) - stmt_total
    print(f"  statements' wall p50 sum {stmt_total:.1f} ms; the rest (Python) ~{rest:.1f} ms")
    conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
