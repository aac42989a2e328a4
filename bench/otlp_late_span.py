"""A 1-span OTLP request against a large stored trace: what it costs, and what it does to other ingest.

The stored trace (``--steps`` spans, default 200,000, one run, 0.1 % of them errors) is written
straight into the database (SQL, or the ClickHouse rows in a subprocess: one process per chdb
directory); then ONE server process (``benchlib.serve_app``, one uvicorn
worker, loopback) receives, ``--repeat`` times, a request holding one span of that trace that starts
before every stored one (the worst case for a store that numbers steps by start time). While each
such request runs, another client keeps posting small unrelated traces (10 spans); the table shows
the late request's time and the slowest of those other requests, next to the same client's latency
with nothing else going on.

``--base SRC`` measures a checkout of the previous code side by side in the same run (its ``src``
directory, e.g. a ``git worktree add /tmp/base <commit>``): the database is migrated and served by
that code instead.

    .venv/bin/python bench/otlp_late_span.py --base /tmp/base/src            # both databases
    .venv/bin/python bench/otlp_late_span.py --backend sqlite --steps 50000
    .venv/bin/python bench/otlp_late_span.py --backend chdb --base /tmp/base/src  # ClickHouse, embedded
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import sqlalchemy as sa
from benchlib.harness import fmt, free_port, machine_description, print_table, server_env, stop_process, wait_for_http
from benchlib.pg import DEFAULT_BENCH_URL, ensure_database, temporary_schema
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

RUN_ID = "5ca1ab1e-0000-4000-8000-000000000001"
TRACE_ID = bytes.fromhex(RUN_ID.replace("-", ""))
ROOT_SPAN = bytes.fromhex("00000000000000ff")
T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span(trace_id: bytes, span_id: int, start: datetime, ms: int, parent: bytes | None, tool: str) -> Span:
    start_ns = int(start.timestamp() * 1e9)
    span = Span(trace_id=trace_id, span_id=span_id.to_bytes(8, "big"), name=f"execute_tool {tool}",
                start_time_unix_nano=start_ns, end_time_unix_nano=start_ns + ms * 1_000_000)
    if parent is not None:
        span.parent_span_id = parent
    span.attributes.extend([_kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", tool)])
    return span


def _body(spans: list[Span]) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", "late-span-bench"))
    rs.scope_spans.add().spans.extend(spans)
    return request.SerializeToString()


def load_trace(url: str, steps: int) -> None:
    """The stored trace, written with SQL as the OTLP writer would have stored it: seq in start order."""
    from agenttracer.store.sql.schema.engine import make_engine
    from agenttracer.store.sql.schema.tables import runs
    from agenttracer.store.sql.schema.tables import steps as steps_table

    engine = make_engine(url, poolclass=sa.pool.NullPool)
    columns = ("run_id", "seq", "step_type", "name", "status", "started_at", "ended_at", "latency_ms", "attempt",
               "retry_of_seq", "parent_seq", "error_class", "failure_code", "meta", "meta_removed", "span_id",
               "parent_span_id")
    insert = sa.insert(steps_table)
    with engine.begin() as conn:
        conn.execute(sa.insert(runs).values(
            run_id=RUN_ID, agent_id="late-span-bench", agent_version="unversioned", environment="development",
            status="running", started_at=T0, meta={}, ingested_at=T0, updated_at=T0, step_count=steps,
            error_step_count=steps // 1000))
        batch = []
        for seq in range(1, steps + 1):
            start = T0 + timedelta(milliseconds=seq * 10)
            error = seq % 1000 == 0
            batch.append(dict(zip(columns, (
                RUN_ID, seq, "tool", f"tool_{seq % 20}", "error" if error else "ok", start,
                start + timedelta(milliseconds=5), 5.0, 1, None, None, "TimeoutError" if error else None,
                "timeout" if error else None, {}, 0, f"{seq:016x}", ROOT_SPAN.hex()), strict=True)))
            if len(batch) == 20_000:
                conn.execute(insert, batch)
                batch = []
        if batch:
            conn.execute(insert, batch)
    engine.dispose()


def load_trace_chdb(url: str, steps: int) -> None:
    """The stored trace in the ClickHouse store's rows, as its OTLP writer would have stored it."""
    from agenttracer.store.clickhouse.connection import connect
    from agenttracer.store.clickhouse.write.rows import insert_runs, insert_steps, next_version, run_values, step_values

    identity = ("late-span-bench", "unversioned", "development")
    conn = connect(url)
    run = {
        "run_id": RUN_ID, "project": "default", "agent_id": identity[0], "agent_version": identity[1],
        "environment": identity[2], "status": "running", "started_at": T0, "ended_at": None, "step_count": steps,
        "error_step_count": steps // 1000, "retry_count": 0, "failure_type": None, "failure_code": None,
        "failure_step_seq": None, "failure_message": None, "failure_recorded_at": None, "meta": {},
        "meta_removed": 0, "ingested_at": T0, "updated_at": T0, "root_span_id": None, "root_error": None,
        "source": "otlp", "abandoned": False,
    }  # fmt: skip
    version = next_version()
    batch = []
    for seq in range(1, steps + 1):
        start = T0 + timedelta(milliseconds=seq * 10)
        error = seq % 1000 == 0
        batch.append(step_values("default", identity, {
            "run_id": RUN_ID, "seq": seq, "step_type": "tool", "name": f"tool_{seq % 20}",
            "status": "error" if error else "ok", "started_at": start, "ended_at": start + timedelta(milliseconds=5),
            "latency_ms": 5.0, "attempt": 1, "retry_of_seq": None, "parent_seq": None,
            "error_class": "TimeoutError" if error else None, "failure_code": "timeout" if error else None,
            "meta": {}, "meta_removed": 0, "span_id": f"{seq:016x}", "parent_span_id": ROOT_SPAN.hex()}, version))
        if len(batch) == 20_000:
            insert_steps(conn, batch, f"late-{seq}")
            batch = []
    if batch:
        insert_steps(conn, batch, "late-last")
    insert_runs(conn, [run_values(run, version, T0)], "late-run")
    conn.close()


@contextmanager
def database(backend: str, pg_url: str) -> Iterator[str]:
    if backend == "chdb":
        tmp = Path(tempfile.mkdtemp(prefix="at_bench_late_chdb_"))
        try:
            yield f"chdb://{tmp.as_posix()}?database=late"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    elif backend == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="at_bench_late_"))
        try:
            yield f"sqlite:///{(tmp / 'late.db').as_posix()}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        with temporary_schema(pg_url, prefix="at_bench_late") as url:
            yield url


def side_env(src: str | None) -> dict[str, str]:
    env = server_env()
    if src is not None:  # the previous code first on the path, ahead of the installed checkout
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return env


def measure(backend: str, pg_url: str, src: str | None, steps: int, repeat: int) -> tuple[list[float], float, float]:
    """(late-span request seconds per repeat, slowest other request during them, other request median alone)."""
    with database(backend, pg_url) as url:
        migrate = "import sys; from agenttracer.store import open_store; s = open_store(sys.argv[1]); s.migrate();" \
                  " s.close()"
        subprocess.run([sys.executable, "-c", migrate, url], env=side_env(src), check=True)
        if backend == "chdb":  # in a process of its own: the server opens the directory next
            subprocess.run([sys.executable, __file__, "--load-chdb", url, "--steps", str(steps)], check=True)
        else:
            load_trace(url, steps)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "benchlib.serve_app", "ingest", "--database-url", url,
                                   "--port", str(port)], env=side_env(src), stdout=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}/v1/traces"
        headers = {"Content-Type": "application/x-protobuf"}
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", 60, server)
            with httpx.Client(timeout=300) as client:
                alone = [_other(client, endpoint, headers, 10_000 + i)[1] for i in range(20)]
                late: list[float] = []
                during: list[float] = []
                for i in range(repeat):
                    stop = threading.Event()
                    worker = threading.Thread(target=_others, args=(endpoint, headers, 20_000 + 1000 * i, stop, during))
                    worker.start()
                    time.sleep(0.2)
                    span = _span(TRACE_ID, steps + 100 + i, T0 - timedelta(seconds=i + 1), 3, ROOT_SPAN, "tool_1")
                    t0 = time.perf_counter()
                    response = client.post(endpoint, content=_body([span]), headers=headers)
                    late.append(time.perf_counter() - t0)
                    assert response.status_code == 200, response.text
                    time.sleep(0.2)
                    stop.set()
                    worker.join()
        finally:
            stop_process(server)
    return late, max(during), statistics.median(alone)


def _other(client: httpx.Client, endpoint: str, headers: dict[str, str], n: int) -> tuple[int, float]:
    trace = n.to_bytes(16, "big")
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    spans = [_span(trace, k + 1, start + timedelta(milliseconds=k), 1, b"\0\0\0\0\0\0\0\x01", "t") for k in range(10)]
    t0 = time.perf_counter()
    code = client.post(endpoint, content=_body(spans), headers=headers).status_code
    return code, time.perf_counter() - t0


def _others(endpoint: str, headers: dict[str, str], first: int, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=300) as client:
        n = first
        while not stop.is_set():
            out.append(_other(client, endpoint, headers, n)[1])
            n += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "chdb", "both"), default="both")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base", help="src directory of the previous code, measured side by side")
    parser.add_argument("--pg-url", default=DEFAULT_BENCH_URL)
    parser.add_argument("--load-chdb", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_chdb:
        load_trace_chdb(args.load_chdb, args.steps)
        return
    print(machine_description())
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    if "postgresql" in backends:
        ensure_database(args.pg_url)
    sides = [("previous", args.base), ("this", None)] if args.base else [("this", None)]
    rows = []
    for backend in backends:
        for label, src in sides:
            late, worst, alone = measure(backend, args.pg_url, src, args.steps, args.repeat)
            rows.append([backend, label, fmt(statistics.median(late) * 1000), fmt(max(late) * 1000),
                         fmt(alone * 1000), fmt(worst * 1000)])
    print_table(f"1-span request against a {args.steps:,}-span stored trace (ms; {args.repeat} requests)",
                ["database", "code", "late span median", "late span max", "other request alone (median)",
                 "other request during (max)"], rows)


if __name__ == "__main__":
    main()
