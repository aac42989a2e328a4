"""Server CPU per step of the ingest path, split by phase, in one process (no HTTP, no clients).

``cd bench && python -m benchlib.ingest_phases --backend sqlite --steps 30000`` builds the same SDK-shaped
batches as ``ingest_throughput.py`` (decompressed, as the handler sees them), feeds them one after
the other through ``agenttracer.server.ingest.process_batch`` against a fresh migrated database and
prints CPU microseconds per stored step: in total, and inside ``convert_event`` (validation + privacy
policy), ``write_batch`` (the writer, including the database's own work on SQLite) and the rest
(JSON parsing, the response). Single-threaded, so the figures are the cost of the code, not of
contention; the end-to-end script measures the rest. Several rounds; the median is printed.
``--metrics`` alternates rounds with and without the ingest metrics counting (``IngestMetrics``) and
prints the paired difference: the per-step cost of the metrics without HTTP or scrapes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from agenttracer.server.ingest import app as ingest
from agenttracer.server.ingest.metrics import IngestMetrics
from agenttracer.server.settings import Settings
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from benchlib.dataset import DatasetSpec, Generator, wire_events
from benchlib.pg import ensure_database, temporary_schema


@contextmanager
def fresh_database(backend: str, pg_url: str) -> Iterator[str]:
    if backend == "postgresql":
        ensure_database(pg_url)
        with temporary_schema(pg_url, prefix="at_bench_phases") as url:
            yield url
        return
    tmp = Path(tempfile.mkdtemp(prefix="at_bench_phases_"))
    try:
        yield f"sqlite:///{(tmp / 'ingest.db').as_posix()}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def migrate(url: str) -> None:
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    upgrade(engine)
    engine.dispose()


class _Timer:
    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.thread_time() - t0

        return timed


def bodies(steps: int, batch: int, seed: int) -> tuple[list[bytes], int]:
    from datetime import datetime, timezone

    spec = DatasetSpec(runs=max(1, int(steps / 10.1)), seed=seed, span_days=1.0,
                       end=datetime.now(timezone.utc).replace(microsecond=0))
    events: list[dict[str, Any]] = []
    for run in Generator(spec).runs():
        events.extend(wire_events(run))
    n_steps = sum(1 for e in events if e["type"] == "step")
    return [orjson.dumps({"events": events[i:i + batch]}) for i in range(0, len(events), batch)], n_steps


def one_round(
    backend: str, pg_url: str, payloads: list[bytes], n_steps: int, metrics: bool = False
) -> dict[str, float]:
    convert, write = _Timer(), _Timer()
    counted = IngestMetrics(Settings().metrics_max_agent_series) if metrics else None
    original = {name: getattr(ingest, name) for name in ("convert_event", "write_batch") if hasattr(ingest, name)}
    with fresh_database(backend, pg_url) as url:
        migrate(url)
        engine = make_engine(url, hide_parameters=True)
        try:
            if "convert_event" in original:
                ingest.convert_event = convert.wrap(original["convert_event"])  # type: ignore[attr-defined]
            ingest.write_batch = write.wrap(original["write_batch"])  # type: ignore[attr-defined]
            t0 = time.thread_time()
            for body in payloads:
                status, _ = ingest.process_batch(engine, body, counted)
                assert status == 200, status
            total = time.thread_time() - t0
        finally:
            for name, fn in original.items():
                setattr(ingest, name, fn)
            engine.dispose()
    per = 1e6 / n_steps
    return {"total": total * per, "convert": convert.seconds * per, "write": write.seconds * per,
            "rest": (total - convert.seconds - write.seconds) * per}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite,postgresql")
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/at_bench")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--metrics", action="store_true",
                        help="also time rounds with the ingest metrics counting (alternating with rounds without)")
    args = parser.parse_args()
    payloads, n_steps = bodies(args.steps, args.batch, args.seed)
    for backend in [b.strip() for b in args.backend.split(",") if b.strip()]:
        modes = [False, True] if args.metrics else [False]
        rounds: dict[bool, list[dict[str, float]]] = {m: [] for m in modes}
        for i in range(args.rounds):
            for metrics in modes if i % 2 == 0 else modes[::-1]:
                rounds[metrics].append(one_round(backend, args.pg_url, payloads, n_steps, metrics))
        for metrics, done in rounds.items():
            cells = "  ".join(f"{k} {statistics.median(r[k] for r in done):5.1f}" for k in done[0])
            label = f"{backend}{', metrics on' if metrics else ''}"
            print(f"{label:22s} CPU us/step (median of {args.rounds}): {cells}", flush=True)
        if args.metrics:
            extra = [100 * (a["total"] / b["total"] - 1) for a, b in zip(rounds[True], rounds[False], strict=True)]
            print(f"{backend:22s} metrics on vs off: {statistics.median(extra):+.1f} % CPU per step "
                  f"(paired rounds: {', '.join(f'{x:+.1f}' for x in extra)})", flush=True)


if __name__ == "__main__":
    main()
