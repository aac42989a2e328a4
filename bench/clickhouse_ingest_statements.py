"""Where the ClickHouse ingest path's time goes, per stored step: statement by statement, in one process.

The same SDK-shaped batches as ``ingest_throughput.py`` (decompressed, as the handler sees them) go
through ``agenttracer.server.ingest.process_batch`` into a fresh embedded (chdb) database from
``--threads`` threads at once (the server handles requests on several threads; that is what lets the
writer's group commit combine inserts). Every statement the store sends is timed (wall, and CPU of the
calling thread: chdb runs much of a statement there) and counted by kind; the process's CPU (and its
kernel part), and the wall time of the whole feed are measured too. No HTTP and no client processes:
the engine's and the writer's share of the end-to-end figure. The request threads' CPU is split into
what every store shares (parse, validate, scrub, answer) and the store's writer, whose part is split
again into Python and the chdb statements it runs; the rest of the process CPU is the engine's thread
pools (background merges, insert and query pipelines). The startup heap is frozen first, as the server
does. ``--pg-url`` feeds the same bodies to the SQL store on PostgreSQL too (rounds alternating), for
the same split of its request threads (its server's CPU is elsewhere and not counted).

    .venv/bin/python bench/clickhouse_ingest_statements.py --steps 30000
    PYTHONPATH=/work/main/src .venv/bin/python bench/clickhouse_ingest_statements.py --steps 30000   # main's code
    .venv/bin/python bench/clickhouse_ingest_statements.py --steps 20000 --pg-url postgresql://postgres@127.0.0.1:5432/at_bench
    .venv/bin/python bench/clickhouse_ingest_statements.py --steps 10000 --threads 1 --cprofile 25

The numbers are per stored step (steps counted in the database afterwards): ``statements/batch`` is the
kind's count divided by the number of request bodies.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.ingest_phases import bodies
from benchlib.pg import ensure_database, temporary_schema

from agenttracer.server.ingest.app import process_batch
from agenttracer.server.runner import freeze_startup_heap
from agenttracer.store import open_store
from agenttracer.store.clickhouse.chdb_pool import ChdbConnection

_FROM = re.compile(r"\bFROM\s+([a-z_]+)", re.IGNORECASE)


def kind_of(sql: str) -> str:
    """A short name for a statement: INSERT <table>, or SELECT over the tables it reads."""
    head = sql.lstrip()
    if head.upper().startswith("INSERT INTO"):
        return "INSERT " + head.split()[2]
    tables = sorted(set(_FROM.findall(head)) - {"system"})
    return "SELECT " + "+".join(tables)


class StatementTimer:
    """Wraps ``ChdbConnection._run``: wall seconds, the calling thread's CPU seconds and count per
    statement kind (the engine runs much of a statement in the thread that sends it)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._original = ChdbConnection._run

    def __enter__(self) -> StatementTimer:
        original = self._original
        timer = self

        def timed(conn: ChdbConnection, sql: str, fmt: str, params: Any) -> Any:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return original(conn, sql, fmt, params)
            finally:
                took, cpu = time.perf_counter() - t0, time.thread_time() - c0
                kind = kind_of(sql)
                with timer._lock:
                    timer.seconds[kind] += took
                    timer.cpu[kind] += cpu
                    timer.count[kind] += 1

        ChdbConnection._run = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        ChdbConnection._run = self._original  # type: ignore[method-assign]


class WriterTimer:
    """Wraps the store's ``write_batch``: the calling threads' CPU seconds inside the writer (the rest of
    a request thread's CPU is parsing, validation, scrubbing and the answer, shared by every store)."""

    def __init__(self, store: Any) -> None:
        self.cpu = 0.0
        self._lock = threading.Lock()
        self._store = store
        self._original = store.write_batch

    def __enter__(self) -> WriterTimer:
        original = self._original

        def timed(*args: Any, **kwargs: Any) -> Any:
            c0 = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                cpu = time.thread_time() - c0
                with self._lock:
                    self.cpu += cpu

        self._store.write_batch = timed
        return self

    def __exit__(self, *exc: object) -> None:
        self._store.write_batch = self._original


@contextmanager
def fresh_store(sql_url: str | None) -> Iterator[Any]:
    """A fresh chdb database, or (``sql_url``) a fresh schema in that PostgreSQL database; migrated."""
    if sql_url is not None:
        ensure_database(sql_url)
        with temporary_schema(sql_url, prefix="at_bench_ch_stmts") as url:
            store = open_store(url)
            try:
                store.migrate()
                yield store
            finally:
                store.close()
        return
    tmp = Path(tempfile.mkdtemp(prefix="at_bench_ch_stmts_"))
    store = open_store(f"chdb://{tmp.as_posix()}?database=bench")
    try:
        store.migrate()
        store._connect().query("SELECT 1")  # the decoder's imports, before the threads
        yield store
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def stored_steps(store: Any) -> int:
    if hasattr(store, "engine"):
        with store.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM steps").scalar_one())
    conn = store._connect()
    return int(conn.query("SELECT count() FROM (SELECT run_id, seq FROM steps FINAL WHERE is_deleted = 0)").rows[0][0])


def one_round(payloads: list[bytes], threads: int, profile: cProfile.Profile | None,
              sql_url: str | None = None) -> dict[str, Any]:
    with fresh_store(sql_url) as store:
        # As a serving process does (server/runner.py) before it serves: the full collections of the
        # cyclic GC would otherwise walk the bench's own objects again and again.
        freeze_startup_heap()
        queue = list(reversed(payloads))
        lock = threading.Lock()
        failures: list[int] = []

        feeders_cpu: list[float] = []

        def feed() -> None:
            t0 = time.thread_time()
            while True:
                with lock:
                    if not queue:
                        feeders_cpu.append(time.thread_time() - t0)
                        return
                    body = queue.pop()
                status, _ = process_batch(store, body)
                if status != 200:
                    failures.append(status)

        with StatementTimer() as timer, WriterTimer(store) as writer:
            cpu0, wall0, sys0 = time.process_time(), time.perf_counter(), os.times().system
            if profile is not None:
                profile.enable()
            if threads == 1:  # in this thread: what cProfile sees
                feed()
            workers = [threading.Thread(target=feed) for _ in range(threads if threads > 1 else 0)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            if profile is not None:
                profile.disable()
            cpu, wall, kernel = time.process_time() - cpu0, time.perf_counter() - wall0, os.times().system - sys0
        assert not failures, failures
        return {"cpu": cpu, "kernel": kernel, "feeders_cpu": sum(feeders_cpu), "writer_cpu": writer.cpu, "wall": wall,
                "steps": stored_steps(store), "seconds": dict(timer.seconds), "stmt_cpu": dict(timer.cpu),
                "count": dict(timer.count)}


def report(label: str, rounds: list[dict[str, Any]], bodies_n: int, batch: int, threads: int) -> dict[str, Any]:
    median = sorted(rounds, key=lambda r: r["wall"])[len(rounds) // 2]
    steps = median["steps"]
    per = 1e6 / steps
    each = ", ".join(f"{r['steps'] / r['wall']:,.0f}" for r in rounds)
    print(f"{label}: {steps:,} steps in {bodies_n} bodies of {batch} events, {threads} threads; median of "
          f"{len(rounds)} rounds (steps/s per round: {each})")
    print(f"  in-process steps/s {steps / median['wall']:,.0f}   process CPU {median['cpu'] * per:6.1f} us/step "
          f"(of which in the kernel {median['kernel'] * per:5.1f})   wall {median['wall'] * per:6.1f} us/step")
    in_statements = sum(median["stmt_cpu"].values())
    outside = median["feeders_cpu"] - median["writer_cpu"]
    print(f"  CPU in the request threads {median['feeders_cpu'] * per:6.1f} us/step: parse, validate, scrub, answer "
          f"{outside * per:5.1f}; the store's writer {median['writer_cpu'] * per:5.1f} (of which Python "
          f"{(median['writer_cpu'] - in_statements) * per:5.1f}, inside chdb statements {in_statements * per:5.1f})")
    print(f"  CPU in the process's other threads (the engine's merges and query pipelines; PostgreSQL: none) "
          f"{(median['cpu'] - median['feeders_cpu']) * per:6.1f} us/step")
    if median["seconds"]:
        print(f"  {'statement':32s} {'per batch':>9s} {'wall us/step':>13s} {'ms each':>8s} "
              f"{'thread CPU us/step':>19s}")
        for kind, seconds in sorted(median["seconds"].items(), key=lambda kv: -kv[1]):
            count = median["count"][kind]
            print(f"  {kind:32s} {count / bodies_n:9.2f} {seconds * per:13.1f} {1e3 * seconds / count:8.2f} "
                  f"{median['stmt_cpu'][kind] * per:19.1f}")
        print(f"  {'all statements (thread-summed)':32s} {sum(median['count'].values()) / bodies_n:9.2f} "
              f"{sum(median['seconds'].values()) * per:13.1f} {'':8s} {in_statements * per:19.1f}")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=500, help="events per request body")
    parser.add_argument("--threads", type=int, default=4, help="request threads feeding the store at once")
    parser.add_argument("--rounds", type=int, default=3, help="fresh databases; the median round is printed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cprofile", type=int, default=0, help="print the N costliest functions (cumulative)")
    parser.add_argument("--pg-url", default=None,
                        help="also feed the same bodies to the SQL store in a fresh schema of this PostgreSQL "
                             "database, rounds alternating with chdb's (its server's CPU is not counted)")
    args = parser.parse_args()
    payloads, _ = bodies(args.steps, args.batch, args.seed)
    profile = cProfile.Profile() if args.cprofile else None
    stores: list[str | None] = [None] + ([args.pg_url] if args.pg_url else [])
    rounds: dict[str | None, list[dict[str, Any]]] = {url: [] for url in stores}
    for i in range(args.rounds):
        for url in stores if i % 2 == 0 else stores[::-1]:
            rounds[url].append(one_round(payloads, args.threads, profile if url is None else None, url))
    for url in stores:
        report("chdb" if url is None else "postgresql", rounds[url], len(payloads), args.batch, args.threads)
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.cprofile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
