"""Ingest throughput, end to end: SDK-shaped batches from several client processes into ONE server.

For each database (SQLite, PostgreSQL and, with ``--backend chdb``, ClickHouse embedded), each repetition:

1. a fresh database (a temporary SQLite file / a temporary schema in our own PostgreSQL database
   ``at_bench``) migrated with the shipped Alembic migrations;
2. one real ingest server process (the project's ``create_app`` under a single uvicorn worker, or
   ``agenttracer serve ingest`` with ``--via-cli``) on a free loopback port;
3. ``--clients`` processes, each with its own generated runs already encoded as the SDK sends them
   (``{"events": [...]}``, ``--batch`` events per request, gzip), post their batches back to back
   once all are ready;
4. the steps stored are COUNTED IN THE DATABASE afterwards (responses are not trusted for this), and
   steps/s = steps stored / wall time from the start signal until the last response.

Beside it, the raw floor for the very same rows into the same migrated schema with the same batch
boundaries (one transaction per batch): ``executemany`` into SQLite, ``executemany`` and ``COPY``
into PostgreSQL — and the ratio of end to end to the floor. The bar (DESIGN.md): >= 20,000 steps/s
end to end into each database from one server process.

    .venv/bin/python bench/ingest_throughput.py                       # both databases, 3 repetitions
    .venv/bin/python bench/ingest_throughput.py --steps 50000 --repeat 1 --backend sqlite
    .venv/bin/python bench/ingest_throughput.py --profile /tmp/prof   # py-spy the server (1st repetition)
    .venv/bin/python bench/ingest_throughput.py --metrics both --no-floor   # /metrics on vs off, side by side
    .venv/bin/python bench/ingest_throughput.py --backend postgresql,chdb --no-floor   # ClickHouse beside PostgreSQL
    .venv/bin/python bench/ingest_throughput.py --backend postgresql,chdb --no-floor --base /tmp/base/src
        # and the previous code's server on chdb (a `git worktree add /tmp/base <commit>`) in the same run

On ``chdb`` the database is a fresh chdb directory, migrated by the ClickHouse store's migrations; the
server process holds the directory while it serves (one process per chdb directory), and the stored
steps are counted afterwards (newest version of each (run_id, seq)). It has no raw floor here: the bar
for ClickHouse (DESIGN.md) is steps/s per ingest process >= PostgreSQL's, in the same run.

``--metrics on|off|both`` serves with ``AGENTTRACER_METRICS_ENABLED`` 1 (the default, as shipped), 0,
or both ways in every repetition (their order alternating between repetitions), and compares the
server CPU per step (the counting on the ingest path). Rendering ``/metrics`` costs per scrape, not
per step: after each run with metrics on, the idle server is scraped five times and its CPU per
scrape measured, then projected onto one scrape per 15 s (Prometheus's default) at the run's own CPU
rate. The bar: counting + scraping add <= 5 % server CPU per step. ``--scrape-interval S``
additionally scrapes every S seconds during the runs.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing as mp
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
import psycopg
import sqlalchemy as sa
from benchlib.dataset import (
    FAILURE_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
    DatasetSpec,
    Generator,
    copy_lines,
    sqlite_rows,
    wire_events,
)
from benchlib.harness import (
    fmt,
    free_port,
    machine_description,
    print_table,
    py_spy_record,
    server_env,
    stop_process,
    summarize,
    summary_cells,
    wait_for_http,
)
from benchlib.pg import DEFAULT_BENCH_URL, ensure_database, libpq_dsn, server_settings, temporary_schema

from agenttracer.store import open_store
from agenttracer.store.sql.schema.engine import make_engine

STEPS_PER_RUN = 10.1  # what the generator produces on average (checked against the database anyway)
CLIENT_DEADLINE_S = 300.0


@dataclass(frozen=True)
class Workload:
    """What one repetition sends: per client, its runs and their batches."""

    clients: int
    runs_per_client: int
    batch: int
    seed: int


def client_runs(w: Workload, client: int, rep: int) -> Iterator[Any]:
    end = datetime.now(timezone.utc).replace(microsecond=0)
    spec = DatasetSpec(runs=w.runs_per_client, seed=w.seed + 1000 * rep + client, span_days=1.0, end=end)
    return Generator(spec).runs()


def client_batches(w: Workload, client: int, rep: int) -> list[bytes]:
    """The gzip'd request bodies one client sends, in order (runs split across batches as the SDK does)."""
    events: list[dict[str, Any]] = []
    for run in client_runs(w, client, rep):
        events.extend(wire_events(run))
    bodies = []
    for i in range(0, len(events), w.batch):
        bodies.append(gzip.compress(orjson.dumps({"events": events[i:i + w.batch]}), compresslevel=6))
    return bodies


def _client_main(url: str, bodies: list[bytes], ready: Any, go: Any, out: Any) -> None:
    import httpx

    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    ready.set()
    go.wait(60)
    deadline = time.monotonic() + CLIENT_DEADLINE_S
    with httpx.Client(timeout=60.0) as client:
        for body in bodies:
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            try:
                resp = client.post(url, content=body, headers=headers)
                code = resp.status_code
            except httpx.HTTPError:
                code = -1
            latencies.append(time.perf_counter() - t0)
            statuses[code] = statuses.get(code, 0) + 1
    out.put((statuses, latencies, time.perf_counter()))


def _proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _db_backend_cpu(url: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to our bench database.

    Backends show the database in their process title (``postgres: USER DB HOST(PORT) ...``); the
    bench database is ours alone, so this is the database-side cost of what the server sends.
    """
    if not url.startswith("postgresql"):  # SQLite and chdb run inside the server process
        return 0.0
    from sqlalchemy.engine import make_url

    needle = f" {make_url(url).database} "
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                title = fh.read().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres: ") and needle in title:
                total += _proc_cpu_seconds(int(entry))
        except OSError:
            continue
    return total


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


@contextmanager
def fresh_database(backend: str, pg_url: str) -> Iterator[str]:
    if backend == "chdb":
        tmp = Path(tempfile.mkdtemp(prefix="at_bench_ingest_chdb_"))
        try:
            yield f"chdb://{tmp.as_posix()}?database=bench"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    elif backend == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="at_bench_ingest_"))
        try:
            yield f"sqlite:///{(tmp / 'ingest.db').as_posix()}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        with temporary_schema(pg_url, prefix="at_bench_ingest") as url:
            yield url


def migrate(url: str) -> None:
    store = open_store(url)
    try:
        store.migrate()
    finally:
        store.close()


def count_rows(url: str) -> tuple[int, int, int]:
    if url.startswith("chdb:"):
        from agenttracer.store.clickhouse.connection import connect

        conn = connect(url)
        try:
            steps = conn.query("SELECT count() FROM (SELECT is_deleted FROM steps ORDER BY version DESC"
                               " LIMIT 1 BY run_id, seq) WHERE is_deleted = 0").rows[0][0]
            runs, fails = conn.query("SELECT count(), countIf(failure_type IS NOT NULL) FROM (SELECT is_deleted,"
                                     " failure_type FROM runs ORDER BY version DESC LIMIT 1 BY run_id)"
                                     " WHERE is_deleted = 0").rows[0]
        finally:
            conn.close()
        return int(steps), int(runs), int(fails)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        counts = tuple(int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one())
                       for t in ("steps", "runs", "failures"))
    engine.dispose()
    return counts  # type: ignore[return-value]


@dataclass
class EndToEnd:
    steps_per_s: float
    events_per_s: float
    steps: int
    expected_steps: int
    statuses: dict[int, int]
    p50_ms: float
    p95_ms: float
    server_cpu_s: float
    wall_s: float
    db_cpu_s: float  # PostgreSQL backends serving the bench database (0 for SQLite: in-process)
    machine_busy: float  # share of all CPUs busy during the run, whoever used them
    scrape_cpu_ms: float = 0.0  # server CPU per GET /metrics after the run (metrics on only)


class _Scraper:
    """GETs /metrics every ``interval`` seconds in a thread, as Prometheus would, until stopped."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.scrapes = 0
        self.failed = 0
        self.seconds: list[float] = []
        self.sizes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=10.0) as client:
            while not self._stop.wait(self.interval):
                t0 = time.perf_counter()
                try:
                    response = client.get(self.url)
                    ok = response.status_code == 200
                    self.sizes.append(len(response.content))
                except httpx.HTTPError:
                    ok = False
                self.seconds.append(time.perf_counter() - t0)
                self.scrapes += 1
                self.failed += 0 if ok else 1

    def __enter__(self) -> _Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def run_end_to_end(
    backend: str, url: str, w: Workload, rep: int, args: argparse.Namespace, metrics: bool = True,
    src: str | None = None,
) -> EndToEnd:
    migrate(url)
    port = free_port()
    env = server_env()
    if src is not None:  # the previous code first on the server's path, ahead of this checkout
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    env["AGENTTRACER_METRICS_ENABLED"] = "1" if metrics else "0"
    if args.via_cli:
        cmd = [sys.executable, "-m", "agenttracer", "serve", "ingest", "--port", str(port)]
        env["AGENTTRACER_DATABASE_URL"] = url
    else:
        cmd = [sys.executable, "-m", "benchlib.serve_app", "ingest", "--database-url", url, "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    profiler: subprocess.Popen[bytes] | None = None
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", 60, server)
        ctx = mp.get_context("fork")
        ready = [ctx.Event() for _ in range(w.clients)]
        go = ctx.Event()
        out = ctx.Queue()
        expected_steps = 0
        n_events = 0
        procs = []
        for k in range(w.clients):
            bodies = client_batches(w, k, rep)
            for body in bodies:
                events = orjson.loads(gzip.decompress(body))["events"]
                n_events += len(events)
                expected_steps += sum(1 for e in events if e["type"] == "step")
            p = ctx.Process(target=_client_main,
                            args=(f"http://127.0.0.1:{port}/v1/ingest", bodies, ready[k], go, out), daemon=True)
            p.start()
            procs.append(p)
        for e in ready:
            e.wait(120)
        if args.profile and rep == 0:
            profiler = py_spy_record(server.pid, Path(args.profile) / f"ingest_{backend}.txt")
            time.sleep(1.0)
        scraper = (
            _Scraper(f"http://127.0.0.1:{port}/metrics", args.scrape_interval)
            if metrics and args.scrape_interval > 0 else None
        )
        cpu0 = _proc_cpu_seconds(server.pid)
        db0 = _db_backend_cpu(url)
        machine0 = _machine_jiffies()
        t0 = time.perf_counter()
        if scraper is not None:
            scraper.__enter__()
        go.set()
        statuses: dict[int, int] = {}
        latencies: list[float] = []
        t_end = t0
        try:
            for _ in procs:
                st, lat, finished = out.get(timeout=CLIENT_DEADLINE_S + 60)
                for code, n in st.items():
                    statuses[code] = statuses.get(code, 0) + n
                latencies.extend(lat)
                t_end = max(t_end, finished)
        finally:
            if scraper is not None:
                scraper.__exit__()
                if scraper.failed:
                    statuses[-2] = scraper.failed  # shown in the responses: a failed scrape is a problem
                if scraper.seconds:
                    print(f"    /metrics: {scraper.scrapes} scrapes during the run, median "
                          f"{1000 * sorted(scraper.seconds)[len(scraper.seconds) // 2]:.1f} ms, "
                          f"{max(scraper.sizes, default=0):,} bytes", flush=True)
        wall = t_end - t0
        cpu = _proc_cpu_seconds(server.pid) - cpu0
        db_cpu = _db_backend_cpu(url) - db0
        busy, total = (b - a for a, b in zip(machine0, _machine_jiffies(), strict=True))
        for p in procs:
            p.join(10)
        scrape_cpu_ms = _scrape_cost(server.pid, f"http://127.0.0.1:{port}/metrics") if metrics else 0.0
    finally:
        if profiler is not None:
            profiler.send_signal(2)
            try:
                profiler.wait(30)
            except subprocess.TimeoutExpired:
                profiler.kill()
        stop_process(server)
        err = server.stderr.read().decode(errors="replace") if server.stderr else ""
        if server.returncode not in (0, -15, None) and err:
            print(err[-2000:], file=sys.stderr)
    steps, _runs, _fails = count_rows(url)
    latencies.sort()
    return EndToEnd(steps / wall, n_events / wall, steps, expected_steps, statuses,
                    1000 * latencies[len(latencies) // 2], 1000 * latencies[int(len(latencies) * 0.95)], cpu, wall,
                    db_cpu, busy / max(1, total), scrape_cpu_ms)


SCRAPES_MEASURED = 5


def _scrape_cost(pid: int, url: str) -> float:
    """Server CPU milliseconds per GET /metrics, with everything the run stored (the server idle)."""
    import httpx

    with httpx.Client(timeout=30.0) as client:
        client.get(url)
        cpu0 = _proc_cpu_seconds(pid)
        for _ in range(SCRAPES_MEASURED):
            client.get(url).raise_for_status()
        return 1000 * (_proc_cpu_seconds(pid) - cpu0) / SCRAPES_MEASURED


# --- raw floors -----------------------------------------------------------------------------------


def floor_batches(w: Workload, rep: int) -> list[list[Any]]:
    """The same runs as the clients send, grouped into the same number of batches (per client, in order)."""
    runs: list[Any] = []
    for k in range(w.clients):
        runs.extend(client_runs(w, k, rep))
    per_batch = max(1, int(w.batch / (STEPS_PER_RUN + 2.1)))
    return [runs[i:i + per_batch] for i in range(0, len(runs), per_batch)]


def floor_sqlite(url: str, batches: list[list[Any]]) -> tuple[float, int]:
    path = url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    run_sql = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
    step_sql = f"INSERT INTO steps ({', '.join(STEP_COLUMNS)}) VALUES ({', '.join('?' * len(STEP_COLUMNS))})"
    fail_sql = f"INSERT INTO failures ({', '.join(FAILURE_COLUMNS)}) VALUES ({', '.join('?' * len(FAILURE_COLUMNS))})"
    prepared = []
    for batch in batches:
        rr, ss, ff = [], [], []
        for run in batch:
            r, s, f = sqlite_rows(run)
            rr.append(r)
            ss.extend(s)
            if f is not None:
                ff.append(f)
        prepared.append((rr, ss, ff))
    t0 = time.perf_counter()
    for rr, ss, ff in prepared:
        with conn:
            conn.executemany(run_sql, rr)
            conn.executemany(step_sql, ss)
            conn.executemany(fail_sql, ff)
    took = time.perf_counter() - t0
    n = conn.execute("SELECT count(*) FROM steps").fetchone()[0]
    conn.close()
    return n / took, n


def _pg_rows(batches: list[list[Any]]) -> list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[Any]]]:
    def conv(row: tuple[Any, ...]) -> tuple[Any, ...]:
        # psycopg adapts datetimes; SQLite rows carry naive UTC text, so parse them once up front
        out = []
        for v in row:
            if isinstance(v, str) and len(v) == 26 and v[4] == "-" and v[10] == " ":
                out.append(datetime.fromisoformat(v).replace(tzinfo=timezone.utc))
            else:
                out.append(v)
        return tuple(out)

    prepared = []
    for batch in batches:
        rr, ss, ff = [], [], []
        for run in batch:
            r, s, f = sqlite_rows(run)
            rr.append(conv(r))
            ss.extend(conv(x) for x in s)
            if f is not None:
                ff.append(conv(f))
        prepared.append((rr, ss, ff))
    return prepared


def floor_pg_executemany(url: str, batches: list[list[Any]]) -> tuple[float, int]:
    prepared = _pg_rows(batches)
    run_sql = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join(['%s'] * len(RUN_COLUMNS))})"
    step_sql = f"INSERT INTO steps ({', '.join(STEP_COLUMNS)}) VALUES ({', '.join(['%s'] * len(STEP_COLUMNS))})"
    fail_sql = (f"INSERT INTO failures ({', '.join(FAILURE_COLUMNS)}) "
                f"VALUES ({', '.join(['%s'] * len(FAILURE_COLUMNS))})")
    with psycopg.connect(libpq_dsn(url)) as conn:
        t0 = time.perf_counter()
        for rr, ss, ff in prepared:
            with conn.cursor() as cur:
                cur.executemany(run_sql, rr)
                cur.executemany(step_sql, ss)
                if ff:
                    cur.executemany(fail_sql, ff)
            conn.commit()
        took = time.perf_counter() - t0
        n = conn.execute("SELECT count(*) FROM steps").fetchone()[0]  # type: ignore[index]
    return n / took, n


def floor_pg_copy(url: str, batches: list[list[Any]]) -> tuple[float, int]:
    prepared = []
    for batch in batches:
        rr, ss, ff = [], [], []
        for run in batch:
            r, s, f = copy_lines(run)
            rr.append(r)
            ss.append(s)
            if f is not None:
                ff.append(f)
        prepared.append(("".join(rr), "".join(ss), "".join(ff)))
    with psycopg.connect(libpq_dsn(url)) as conn:
        t0 = time.perf_counter()
        for rr, ss, ff in prepared:
            with conn.cursor() as cur:
                with cur.copy(f"COPY runs ({', '.join(RUN_COLUMNS)}) FROM STDIN") as cp:
                    cp.write(rr)
                with cur.copy(f"COPY steps ({', '.join(STEP_COLUMNS)}) FROM STDIN") as cp:
                    cp.write(ss)
                if ff:
                    with cur.copy(f"COPY failures ({', '.join(FAILURE_COLUMNS)}) FROM STDIN") as cp:
                        cp.write(ff)
            conn.commit()
        took = time.perf_counter() - t0
        n = conn.execute("SELECT count(*) FROM steps").fetchone()[0]  # type: ignore[index]
    return n / took, n


def record_e2e(figures: dict[str, list[float]], e2e: EndToEnd, backend: str, rep: int, problems: list[str]) -> None:
    figures.setdefault("e2e", []).append(e2e.steps_per_s)
    figures.setdefault("events", []).append(e2e.events_per_s)
    figures.setdefault("p50", []).append(e2e.p50_ms)
    figures.setdefault("p95", []).append(e2e.p95_ms)
    figures.setdefault("cpu_us", []).append(1e6 * e2e.server_cpu_s / max(1, e2e.steps))
    figures.setdefault("db_cpu_us", []).append(1e6 * e2e.db_cpu_s / max(1, e2e.steps))
    figures.setdefault("busy", []).append(100 * e2e.machine_busy)
    if e2e.scrape_cpu_ms:
        figures.setdefault("scrape_ms", []).append(e2e.scrape_cpu_ms)
        # One scrape per 15 s (Prometheus's default) against the server CPU this run used per second.
        cpu_per_s = e2e.server_cpu_s / e2e.wall_s
        figures.setdefault("scrape_pct", []).append(100 * e2e.scrape_cpu_ms / 1000 / (15 * cpu_per_s))
    print(f"  rep {rep + 1} {backend}: {e2e.steps:,}/{e2e.expected_steps:,} steps stored in {e2e.wall_s:.2f} s"
          f" = {e2e.steps_per_s:,.0f} steps/s; responses {dict(sorted(e2e.statuses.items()))}; "
          f"server CPU {e2e.server_cpu_s:.1f} s, database CPU {e2e.db_cpu_s:.1f} s, "
          f"machine {100 * e2e.machine_busy:.0f} % busy",
          flush=True)
    if e2e.steps != e2e.expected_steps:
        problems.append(f"{backend} rep {rep + 1}: stored {e2e.steps:,} of {e2e.expected_steps:,} steps sent")


def metrics_cost_rows(results: dict[str, dict[str, list[float]]], backends: list[str]) -> list[list[str]]:
    """Server CPU per step with metrics on over off, paired per repetition (the same data and order)."""
    rows = []
    for backend in backends:
        on = results.get(f"{backend}, metrics on", {}).get("cpu_us", [])
        off = results.get(f"{backend}, metrics off", {}).get("cpu_us", [])
        if not on or not off:
            continue
        extra = summarize([100 * (a / b - 1) for a, b in zip(on, off, strict=False)])
        rows.append([f"{backend}: server CPU per step, metrics on vs off (+%)", *summary_cells(extra, 1), "", ""])
        scrape = results[f"{backend}, metrics on"].get("scrape_ms")
        share = 0.0
        if scrape:
            rows.append([f"{backend}: server CPU per /metrics scrape (ms)", *summary_cells(summarize(scrape)), "", ""])
            scrape_pct = summarize(results[f"{backend}, metrics on"]["scrape_pct"])
            share = scrape_pct.median
            rows.append([f"{backend}: one scrape per 15 s at this rate (+%)", *summary_cells(scrape_pct, 2), "", ""])
        total = extra.median + share
        rows.append([f"{backend}: bar metrics add <= 5 % CPU per step", "", f"{total:+.1f} %", "", "",
                     "MET" if total <= 5.0 else "NOT MET"])
    return rows


# --- main -----------------------------------------------------------------------------------------

BACKENDS = ("sqlite", "postgresql")


def parse_backends(parser: argparse.ArgumentParser, value: str) -> list[str]:
    """``--backend``: names from BACKENDS, comma-separated, or ``both``; anything else is an error (an unknown
    name used to fall through to the PostgreSQL branch, so ``both`` measured PostgreSQL only)."""
    names = [b.strip() for b in value.split(",") if b.strip()]
    backends = [b for name in names for b in (BACKENDS if name == "both" else (name,))]
    unknown = sorted(set(backends) - {*BACKENDS, "chdb"})
    if unknown or not backends:
        parser.error(f"--backend: expected sqlite, postgresql, chdb or both, got {value!r}")
    return list(dict.fromkeys(backends))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite,postgresql",
                        help="comma-separated: sqlite,postgresql,chdb (or both: sqlite,postgresql)")
    parser.add_argument("--steps", type=int, default=150_000, help="steps sent per repetition (all clients)")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--batch", type=int, default=500, help="events per request (the SDK sends <= 500)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("AGENTTRACER_BENCH_PG_URL", DEFAULT_BENCH_URL))
    parser.add_argument("--via-cli", action="store_true", help="start the server with `agenttracer serve ingest`")
    parser.add_argument("--no-floor", action="store_true", help="skip the raw-floor measurements")
    parser.add_argument("--no-e2e", action="store_true", help="only the raw floors (no server)")
    parser.add_argument("--profile", help="directory for a py-spy profile of the server (first repetition)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--metrics", choices=("on", "off", "both"), default="on",
                        help="serve with /metrics and its counters on (as shipped), off, or both side by side")
    parser.add_argument("--scrape-interval", type=float, default=0.0,
                        help="also scrape /metrics every this many seconds during the run (0: not during the run)")
    parser.add_argument("--base", help="src directory of the previous code: its server measured side by side")
    parser.add_argument("--base-backends", default="chdb",
                        help="comma-separated backends measured with --base too (default: chdb)")
    args = parser.parse_args()

    backends = parse_backends(parser, args.backend)
    with_base = set(parse_backends(parser, args.base_backends)) if args.base else set()
    runs_per_client = max(1, int(args.steps / STEPS_PER_RUN / args.clients))
    w = Workload(args.clients, runs_per_client, args.batch, args.seed)
    print(f"machine: {machine_description()}")
    if "postgresql" in backends:
        ensure_database(args.pg_url)
        s = server_settings(args.pg_url)
        print("postgresql: " + ", ".join(f"{k}={v}" for k, v in s.items()))
    print(f"workload: {w.clients} client processes x {w.runs_per_client:,} runs (~{args.steps:,} steps), "
          f"{w.batch} events per gzip'd request, {args.repeat} repetitions")

    results: dict[str, dict[str, list[float]]] = {}
    problems: list[str] = []
    for rep in range(args.repeat):
        for backend in backends:
            figures = results.setdefault(backend, {})
            if not args.no_e2e:
                # Side by side: both modes in every repetition, the order alternating between them.
                modes = {"on": [True], "off": [False], "both": [False, True] if rep % 2 == 0 else [True, False]}
                sides: list[tuple[str, str | None]] = [("", None)]
                if backend in with_base:  # previous and this code in every repetition, the order alternating
                    sides = [(" (previous code)", args.base), ("", None)][:: 1 if rep % 2 == 0 else -1]
                for suffix, src in sides:
                    for metrics in modes[args.metrics]:
                        label = backend + suffix
                        if args.metrics == "both":
                            label += f", metrics {'on' if metrics else 'off'}"
                        with fresh_database(backend, args.pg_url) as url:
                            e2e = run_end_to_end(backend, url, w, rep, args, metrics, src)
                        record_e2e(results.setdefault(label, {}), e2e, label, rep, problems)
            if args.no_floor or backend == "chdb":
                continue
            batches = floor_batches(w, rep)
            if backend == "sqlite":
                with fresh_database(backend, args.pg_url) as url:
                    migrate(url)
                    rate, _n = floor_sqlite(url, batches)
                figures.setdefault("floor executemany", []).append(rate)
            else:
                with fresh_database(backend, args.pg_url) as url:
                    migrate(url)
                    rate, _n = floor_pg_executemany(url, batches)
                figures.setdefault("floor executemany", []).append(rate)
                with fresh_database(backend, args.pg_url) as url:
                    migrate(url)
                    rate, _n = floor_pg_copy(url, batches)
                figures.setdefault("floor COPY", []).append(rate)

    rows = []
    for backend, figures in results.items():
        e2e_vals = figures.get("e2e")
        if e2e_vals:
            rows.append([f"{backend}: end to end (steps/s)", *summary_cells(summarize(e2e_vals), 0), "", ""])
            rows.append([f"{backend}: end to end (events/s)", *summary_cells(summarize(figures["events"]), 0), "", ""])
        for key in ("floor executemany", "floor COPY"):
            if key in figures:
                fl = summarize(figures[key])
                ratio = ""
                if e2e_vals:
                    ratios = [a / b for a, b in zip(e2e_vals, figures[key], strict=False)]
                    ratio = f"{100 * summarize(ratios).median:.1f} %"
                label = f"{backend}: raw {key.removeprefix('floor ')} (steps/s)"
                rows.append([label, *summary_cells(fl, 0), ratio, ""])
        if e2e_vals:
            rows.append([f"{backend}: request latency p50 (ms)", *summary_cells(summarize(figures["p50"])), "", ""])
            rows.append([f"{backend}: request latency p95 (ms)", *summary_cells(summarize(figures["p95"])), "", ""])
            rows.append([f"{backend}: server CPU per step (us)", *summary_cells(summarize(figures["cpu_us"])), "", ""])
            if backend == "postgresql":
                rows.append([f"{backend}: database CPU per step (us)", *summary_cells(summarize(figures["db_cpu_us"])),
                             "", ""])
            rows.append([f"{backend}: machine busy during run (%)", *summary_cells(summarize(figures["busy"]), 0),
                         "", ""])
            median = summarize(e2e_vals).median
            rows.append([f"{backend}: bar >= 20,000 steps/s", "", fmt(median, 0), "", "",
                         "MET" if median >= 20_000 else "NOT MET"])
    if args.metrics == "both":
        rows += metrics_cost_rows(results, backends)
    print_table("Ingest throughput (steps stored, counted in the database; min / median / max over repetitions)",
                ["figure", "min", "median", "max", "e2e / floor", "bar"], rows)
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
