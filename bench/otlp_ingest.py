"""OTLP trace ingest, end to end: realistic agent traces as OTLP/protobuf+gzip into ONE server process.

The payload: agent traces shaped like Pydantic AI's with content capture ON (the worst case, and the
default of most instrumentations): an ``invoke_agent`` root holding chat calls (prompt and answer
messages of a few hundred bytes to a few KiB, token counts, model names), tool calls (arguments and
results; some fail with an exception event and are retried), an embeddings call. Spans are emitted
as a ``BatchSpanProcessor`` exports them: in end order (children before their root), 512 spans per
request, so traces straddle requests.

Per database (SQLite and PostgreSQL) and repetition, each on a fresh migrated database with one
server process (the project's ``create_app``, one uvicorn worker, loopback):

* ``/v1/traces``: ``--clients`` processes post the protobuf+gzip bodies back to back;
* ``/v1/ingest``: the SAME traces as the SDK would send them (run_start, steps with the same
  metadata, run_end; 500 events per gzip'd JSON request) — the comparison the bar asks for.

Persisted spans are COUNTED IN THE DATABASE afterwards (a span is a step, or the run's root: a run
with an end), and spans/s = persisted / wall time from the start signal to the last response.

Arize Phoenix, same payload, same run: the script installs ``arize-phoenix`` into its own venv
(``--phoenix-venv``, default /tmp/at_bench_phoenix_venv), starts ``phoenix serve`` on loopback with
SQLite in a temporary working directory, posts the same protobuf+gzip bodies to its ``/v1/traces``
and counts the spans in its database until all are there (Phoenix inserts asynchronously).
``--no-phoenix`` skips it; when it cannot be installed or started the script says why and goes on.

Bars (DESIGN.md): >= 10,000 spans/s on PostgreSQL, >= 50 % of /v1/ingest on the same data, >= 100x
Phoenix.

    .venv/bin/python bench/otlp_ingest.py                               # short: both databases, Phoenix
    .venv/bin/python bench/otlp_ingest.py --traces 5000 --repeat 3      # bigger
    .venv/bin/python bench/otlp_ingest.py --backend postgresql --no-phoenix
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing as mp
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib.harness as harness
import orjson
import sqlalchemy as sa
from benchlib.harness import fmt, free_port, machine_description, print_table, server_env, stop_process, wait_for_http
from benchlib.pg import DEFAULT_BENCH_URL, ensure_database, temporary_schema
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade

OTLP_BATCH = 512  # BatchSpanProcessor's default max_export_batch_size
SDK_BATCH = 500  # the SDK's batch size
DEADLINE_S = 600.0
PHOENIX_TIMEOUT_S = 900.0
WORDS = ("order refund shipping invoice account password reset delivery address warranty return label "
         "customer asked about the status of their parcel and wants a callback tomorrow morning").split()


# --- the payload ----------------------------------------------------------------------------------


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, list):
        return KeyValue(key=key, value=AnyValue(array_value={"values": [AnyValue(string_value=v) for v in value]}))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


class Trace:
    """One agent run: its spans (protobuf, in end order) and the same run as SDK events."""

    def __init__(self, rng: random.Random, index: int, t0_ns: int) -> None:
        self.trace_id = rng.randbytes(16)
        self.spans: list[Span] = []
        self.events: list[dict[str, Any]] = []
        agent = f"agent_{index % 5}"
        conversation = rng.randbytes(8).hex()
        root_id = rng.randbytes(8)
        cursor = t0_ns + 1_000_000
        steps: list[dict[str, Any]] = []
        plan = ["chat", "tool", "chat", "embeddings", "tool", "chat", "tool", "chat"][: rng.randint(5, 8)]
        for kind in plan:
            attempts = 2 if kind == "tool" and rng.random() < 0.15 else 1
            for attempt in range(1, attempts + 1):
                failed = attempt < attempts
                start, cursor = cursor, cursor + rng.randint(2, 400) * 1_000_000
                span, _, name = self._child(rng, kind, agent, conversation, failed, attempt)
                span.trace_id, span.span_id, span.parent_span_id = self.trace_id, rng.randbytes(8), root_id
                span.start_time_unix_nano, span.end_time_unix_nano = start, cursor
                # The SDK sends the very metadata /v1/traces keeps of this span: the same data both ways.
                meta = _stored_meta(span)
                self.spans.append(span)
                steps.append({"type": "step", "seq": len(steps) + 1, "step_type": _STEP[kind], "name": name,
                              "started_at": _iso(start), "ended_at": _iso(cursor), "latency_ms": (cursor - start) / 1e6,
                              "status": "error" if failed else "ok", "attempt": attempt,
                              **({"retry_of_seq": len(steps)} if attempt > 1 else {}),
                              **({"error_class": "TimeoutError", "failure_code": "timeout"} if failed else {}),
                              "metadata": meta})
                cursor += 200_000
        tokens = sum(s["metadata"].get("tokens_in", 0) for s in steps)
        root = Span(trace_id=self.trace_id, span_id=root_id, name=f"invoke_agent {agent}", kind=Span.SPAN_KIND_INTERNAL,
                    start_time_unix_nano=t0_ns, end_time_unix_nano=cursor + 1_000_000,
                    status=Status(code=Status.STATUS_CODE_UNSET))
        root.attributes.extend([
            _kv("gen_ai.operation.name", "invoke_agent"), _kv("gen_ai.agent.name", agent),
            _kv("gen_ai.conversation.id", conversation), _kv("logfire.msg", f"{agent} run"),
            _kv("pydantic_ai.all_messages", _text(rng, 300)), _kv("final_result", _text(rng, 40)),
            _kv("gen_ai.aggregated_usage.input_tokens", tokens), _kv("logfire.json_schema", '{"type":"object"}'),
        ])
        self.spans.append(root)  # the root ends last, so it is exported last
        run_id = self.run_id
        ident = {"run_id": run_id, "agent_id": agent, "agent_version": "1.0.0", "environment": "production"}
        self.events = [{"type": "run_start", **ident, "started_at": _iso(t0_ns)}]
        self.events += [{**s, "run_id": run_id} for s in steps]
        self.events.append({"type": "run_end", **ident, "ended_at": _iso(cursor + 1_000_000), "status": "success",
                            "metadata": {"tokens_in": tokens}})

    @property
    def run_id(self) -> str:
        h = self.trace_id.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _child(self, rng: random.Random, kind: str, agent: str, conversation: str, failed: bool,
               attempt: int) -> tuple[Span, dict[str, Any], str]:
        common = [_kv("gen_ai.agent.name", agent), _kv("gen_ai.conversation.id", conversation)]
        if kind == "chat":
            tokens_in, tokens_out = rng.randint(200, 4000), rng.randint(10, 600)
            span = Span(name="chat gpt-4o-mini", kind=Span.SPAN_KIND_CLIENT)
            span.attributes.extend([
                _kv("gen_ai.operation.name", "chat"), *common, _kv("gen_ai.provider.name", "openai"),
                _kv("gen_ai.system", "openai"), _kv("gen_ai.request.model", "gpt-4o-mini"),
                _kv("model_request_parameters", '{"function_tools":[{"name":"lookup_order"}],"output_mode":"text"}'),
                _kv("gen_ai.tool.definitions", '[{"type":"function","name":"lookup_order","parameters":{}}]'),
                _kv("gen_ai.input.messages", _text(rng, rng.randint(80, 500))),
                _kv("gen_ai.output.messages", _text(rng, rng.randint(10, 80))),
                _kv("logfire.json_schema", '{"type":"object","properties":{}}'),
                _kv("gen_ai.usage.input_tokens", tokens_in), _kv("gen_ai.usage.output_tokens", tokens_out),
                _kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18"), _kv("gen_ai.response.finish_reasons", ["stop"]),
                _kv("server.address", "api.openai.com"), _kv("server.port", 443),
            ])
            meta = {"operation": "chat", "provider": "openai", "model": "gpt-4o-mini", "tokens_in": tokens_in,
                    "tokens_out": tokens_out, "served_model": "gpt-4o-mini-2024-07-18", "finish_reasons": "stop",
                    "server_host": "api.openai.com", "server_port": 443}
            return span, meta, span.name
        if kind == "embeddings":
            span = Span(name="embeddings text-embedding-3-small", kind=Span.SPAN_KIND_CLIENT)
            span.attributes.extend([_kv("gen_ai.operation.name", "embeddings"), *common,
                                    _kv("gen_ai.request.model", "text-embedding-3-small"),
                                    _kv("gen_ai.usage.input_tokens", 42), _kv("gen_ai.input.messages", _text(rng, 30))])
            return span, {"operation": "embeddings", "model": "text-embedding-3-small", "tokens_in": 42}, span.name
        tool = rng.choice(("lookup_order", "refund_payment", "search_kb"))
        span = Span(name=f"execute_tool {tool}", kind=Span.SPAN_KIND_INTERNAL)
        span.attributes.extend([
            _kv("gen_ai.operation.name", "execute_tool"), *common, _kv("gen_ai.tool.name", tool),
            _kv("gen_ai.tool.call.id", f"call_{rng.randbytes(6).hex()}"), _kv("logfire.msg", f"running tool: {tool}"),
            _kv("gen_ai.tool.call.arguments", orjson.dumps({"order_ref": _text(rng, 3)}).decode()),
            _kv("gen_ai.tool.call.result", _text(rng, rng.randint(20, 200))),
        ])
        meta: dict[str, Any] = {"operation": "execute_tool", "tool_name": tool}
        if failed:
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = f"TimeoutError: {_text(rng, 12)}"
            event = span.events.add(name="exception", time_unix_nano=1)
            event.attributes.extend([_kv("exception.type", "TimeoutError"), _kv("exception.message", _text(rng, 12)),
                                     _kv("exception.stacktrace", _text(rng, 150)), _kv("exception.escaped", "True")])
            span.attributes.append(_kv("pydantic_ai.tool.retry.attempt", attempt))
            meta["retry_attempt"] = attempt
        return span, meta, tool


_STEP = {"chat": "llm", "tool": "tool", "embeddings": "retrieval"}


def _stored_meta(span: Span) -> dict[str, Any]:
    from agenttracer.server.ingest.otlp_map import map_request

    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(span)
    (record,) = map_request(request, datetime.now(timezone.utc)).spans
    return dict(record.meta)


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"


def make_traces(count: int, seed: int) -> list[Trace]:
    rng = random.Random(seed)
    now_ns = time.time_ns() - 3600 * 1_000_000_000
    return [Trace(rng, i, now_ns + i * 50_000_000) for i in range(count)]


def otlp_bodies(traces: list[Trace]) -> list[bytes]:
    resource = [_kv("service.name", "support-svc"), _kv("service.version", "1.0.0"),
                _kv("deployment.environment.name", "production"), _kv("telemetry.sdk.language", "python"),
                _kv("telemetry.sdk.name", "opentelemetry"), _kv("host.name", "worker-7")]
    spans = [span for trace in traces for span in trace.spans]
    bodies = []
    for i in range(0, len(spans), OTLP_BATCH):
        request = ExportTraceServiceRequest()
        rs = ResourceSpans()
        rs.resource.attributes.extend(resource)
        scope = rs.scope_spans.add()
        scope.scope.name = "pydantic-ai"
        scope.spans.extend(spans[i:i + OTLP_BATCH])
        request.resource_spans.append(rs)
        bodies.append(gzip.compress(request.SerializeToString(), compresslevel=6))
    return bodies


def sdk_bodies(traces: list[Trace]) -> list[bytes]:
    events = [event for trace in traces for event in trace.events]
    return [gzip.compress(orjson.dumps({"events": events[i:i + SDK_BATCH]}), compresslevel=6)
            for i in range(0, len(events), SDK_BATCH)]


# --- sending and counting -------------------------------------------------------------------------


def _client(url: str, bodies: list[bytes], content_type: str, ready: Any, go: Any, out: Any) -> None:
    import httpx

    headers = {"Content-Type": content_type, "Content-Encoding": "gzip"}
    statuses: dict[int, int] = {}
    ready.set()
    go.wait(120)
    with httpx.Client(timeout=120.0) as client:
        for body in bodies:
            try:
                code = client.post(url, content=body, headers=headers).status_code
            except httpx.HTTPError:
                code = -1
            statuses[code] = statuses.get(code, 0) + 1
    out.put((statuses, time.perf_counter()))


def post_all(url: str, bodies: list[bytes], content_type: str, clients: int) -> tuple[float, float, dict[int, int]]:
    """Post the bodies from ``clients`` processes (round robin); (start, end, statuses)."""
    ctx = mp.get_context("fork")
    ready = [ctx.Event() for _ in range(clients)]
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(url, bodies[k::clients], content_type, ready[k], go, out), daemon=True)
             for k in range(clients)]
    for p in procs:
        p.start()
    for e in ready:
        e.wait(120)
    t0 = time.perf_counter()
    go.set()
    statuses: dict[int, int] = {}
    t_end = t0
    for _ in procs:
        st, finished = out.get(timeout=DEADLINE_S)
        for code, n in st.items():
            statuses[code] = statuses.get(code, 0) + n
        t_end = max(t_end, finished)
    for p in procs:
        p.join(10)
    return t0, t_end, statuses


@contextmanager
def fresh_database(backend: str, pg_url: str) -> Iterator[str]:
    if backend == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="at_bench_otlp_"))
        try:
            yield f"sqlite:///{(tmp / 'otlp.db').as_posix()}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        with temporary_schema(pg_url, prefix="at_bench_otlp") as url:
            yield url


def persisted_spans(url: str) -> tuple[int, int]:
    """(steps, runs that ended): a span is a step or a run's root."""
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        steps = int(conn.execute(sa.text("SELECT count(*) FROM steps")).scalar_one())
        ended = int(conn.execute(sa.text("SELECT count(*) FROM runs WHERE ended_at IS NOT NULL")).scalar_one())
    engine.dispose()
    return steps, ended


def measure_ours(backend: str, pg_url: str, path: str, bodies: list[bytes], content_type: str,
                 expected: int, clients: int) -> tuple[float, dict[int, int], int]:
    with fresh_database(backend, pg_url) as url:
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        upgrade(engine)
        engine.dispose()
        port = free_port()
        cmd = [sys.executable, "-m", "benchlib.serve_app", "ingest", "--database-url", url, "--port", str(port)]
        server = subprocess.Popen(cmd, env=server_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", 60, server)
            t0, t1, statuses = post_all(f"http://127.0.0.1:{port}{path}", bodies, content_type, clients)
        finally:
            stop_process(server)
        steps, ended = persisted_spans(url)
    stored = steps + ended
    if stored != expected:
        print(f"  ! {backend} {path}: {stored} spans persisted, {expected} sent (statuses {statuses})")
    return stored / (t1 - t0), statuses, stored


# --- Phoenix --------------------------------------------------------------------------------------


def phoenix_python(venv: Path) -> tuple[Path | None, str]:
    """The venv's python with arize-phoenix installed (installing it if needed), or (None, why not)."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "phoenix").exists():
        print(f"  installing arize-phoenix into {venv} (once) ...", flush=True)
        try:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "arize-phoenix"], check=True,
                           capture_output=True, timeout=1800)
        except subprocess.CalledProcessError as exc:
            tail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
            return None, f"pip install arize-phoenix failed: {' | '.join(tail)}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"could not install arize-phoenix: {type(exc).__name__}: {exc}"
    return python, ""


def measure_phoenix(venv: Path, bodies: list[bytes], expected: int, clients: int) -> tuple[float | None, str]:
    python, why = phoenix_python(venv)
    if python is None:
        return None, why
    workdir = Path(tempfile.mkdtemp(prefix="at_bench_phoenix_"))
    port, grpc_port = _two_ports()
    # gRPC is not measured; it gets a loopback port of its own from the same range.
    env = dict(os.environ, PHOENIX_WORKING_DIR=str(workdir), PHOENIX_HOST="127.0.0.1", PHOENIX_PORT=str(port),
               PHOENIX_GRPC_PORT=str(grpc_port), PHOENIX_TELEMETRY_ENABLED="false")
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([str(venv / "bin" / "phoenix"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", 180, server)
        except RuntimeError as exc:
            tail = (workdir / "server.log").read_text(errors="replace").strip().splitlines()[-3:]
            return None, f"phoenix serve did not start: {exc}; {' | '.join(tail)}"
        db = next(workdir.rglob("phoenix.db"), None)
        t0, _, statuses = post_all(f"http://127.0.0.1:{port}/v1/traces", bodies, "application/x-protobuf", clients)
        db = db or next(workdir.rglob("phoenix.db"), None)
        if db is None:
            return None, "phoenix's SQLite database was not found in its working directory"
        deadline = time.monotonic() + PHOENIX_TIMEOUT_S
        count = last = 0
        last_change = time.perf_counter()
        while time.monotonic() < deadline:
            count = _phoenix_spans(db)
            if count != last:
                last, last_change = count, time.perf_counter()
            if count >= expected:
                break
            if time.perf_counter() - last_change > 30:
                break  # nothing new for 30 s: what is there is all there will be
            time.sleep(0.2)
        if count == 0:
            return None, f"phoenix stored no spans (statuses {statuses})"
        elapsed = last_change - t0
        note = "" if count >= expected else f" (only {count} of {expected} spans stored)"
        return count / elapsed, f"{count} spans persisted in {elapsed:.1f} s, statuses {statuses}{note}"
    finally:
        stop_process(server)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _two_ports() -> tuple[int, int]:
    first = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", first))
        return first, free_port()


def _phoenix_spans(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
    except sqlite3.Error:
        return 0


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=1500, help="agent traces per repetition (~9 spans each)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=DEFAULT_BENCH_URL)
    parser.add_argument("--no-phoenix", action="store_true")
    parser.add_argument("--phoenix-traces", type=int, default=300, help="traces sent to Phoenix (it is slow)")
    parser.add_argument("--phoenix-venv", type=Path, default=Path(tempfile.gettempdir()) / "at_bench_phoenix_venv")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port-base", type=int, help="use loopback ports BASE..BASE+99 (default: the bench range)")
    args = parser.parse_args()
    if args.port_base:
        harness.PORT_RANGE = range(args.port_base, args.port_base + 100)

    print(f"machine: {machine_description()}")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    if "postgresql" in backends:
        ensure_database(args.pg_url)
    rows: list[list[str]] = []
    medians: dict[str, float] = {}
    for backend in backends:
        otlp_rates: list[float] = []
        sdk_rates: list[float] = []
        for rep in range(args.repeat):
            traces = make_traces(args.traces, args.seed + rep)
            expected = sum(len(t.spans) for t in traces)
            otlp, otlp_status, _ = measure_ours(backend, args.pg_url, "/v1/traces", otlp_bodies(traces),
                                                "application/x-protobuf", expected, args.clients)
            sdk, sdk_status, _ = measure_ours(backend, args.pg_url, "/v1/ingest", sdk_bodies(traces),
                                              "application/json", expected, args.clients)
            otlp_rates.append(otlp)
            sdk_rates.append(sdk)
            print(f"  {backend} rep {rep + 1}: {expected} spans; /v1/traces {otlp:,.0f} spans/s {otlp_status}; "
                  f"/v1/ingest {sdk:,.0f} spans/s {sdk_status}", flush=True)
        otlp_rates.sort()
        sdk_rates.sort()
        medians[f"{backend}:otlp"] = otlp_rates[len(otlp_rates) // 2]
        medians[f"{backend}:sdk"] = sdk_rates[len(sdk_rates) // 2]
        rows.append([f"{backend}: /v1/traces (spans/s)", fmt(otlp_rates[0], 0), fmt(medians[f"{backend}:otlp"], 0),
                     fmt(otlp_rates[-1], 0)])
        rows.append([f"{backend}: /v1/ingest, same data (spans/s)", fmt(sdk_rates[0], 0),
                     fmt(medians[f"{backend}:sdk"], 0), fmt(sdk_rates[-1], 0)])

    phoenix: float | None = None
    if not args.no_phoenix:
        traces = make_traces(args.phoenix_traces, args.seed + 100)
        expected = sum(len(t.spans) for t in traces)
        phoenix, note = measure_phoenix(args.phoenix_venv, otlp_bodies(traces), expected, args.clients)
        print(f"  phoenix: {note}")
        if phoenix is not None:
            rows.append(["phoenix (SQLite): /v1/traces (spans/s)", "", fmt(phoenix, 0), ""])
    print_table("OTLP ingest, one server process", ["", "min", "median", "max"], rows)

    print("\nBars:")
    if "postgresql:otlp" in medians:
        pg = medians["postgresql:otlp"]
        print(f"  PostgreSQL >= 10,000 spans/s: {pg:,.0f} -> {'met' if pg >= 10_000 else 'NOT MET'}")
    for backend in backends:
        ratio = medians[f"{backend}:otlp"] / medians[f"{backend}:sdk"]
        print(f"  {backend}: >= 50 % of /v1/ingest: {100 * ratio:.1f} % -> {'met' if ratio >= 0.5 else 'NOT MET'}")
    if phoenix:
        best = medians.get("sqlite:otlp", 0.0)
        times = best / phoenix
        print(f"  SQLite vs Phoenix (SQLite) >= 100x: {times:,.0f}x -> {'met' if times >= 100 else 'NOT MET'}")
    elif not args.no_phoenix:
        print("  Phoenix: not measured (see above)")


if __name__ == "__main__":
    main()
