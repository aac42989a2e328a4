"""A deterministic generator of realistic agent traffic: runs, ordered steps, retries and failures.

The same generated runs feed every benchmark, in three shapes:

- COPY text for PostgreSQL (``copy_lines``) and row tuples for SQLite (``sqlite_rows``), column for
  column the ``runs`` / ``steps`` / ``failures`` tables of ``store/sql/schema/tables.py``;
- SDK-shaped wire events (``wire_events``), as ``POST /v1/ingest`` receives them.

Distributions (all seeded, so a data set can be recognised and reused):

- six agents with Zipf-like traffic shares, three to five versions each, released over the period
  (most runs use the newest released version, some the previous one); the newest version of two
  agents is deliberately worse (a slower tool, a higher error rate) so that comparisons find something;
- environments production 70 % / staging 20 % / development 10 %;
- a run is plan → 0–2 retrievals → 1–6 (llm → tool) rounds → respond: about ten steps on average;
- step latencies log-normal per step name; a failing tool/llm/retrieval step is usually retried as a
  new step (attempt 2, 3, linked by ``retry_of_seq``); an unrecovered error either fails the run
  (one failure row pointing at the step) or is tolerated (the run ends ``partial``); a few runs fail
  in orchestration (``max_iterations``, ``unhandled_exception``);
- start times over ``span_days`` ending at ``end``, denser in working hours; runs that started in
  the last minutes may still be ``running``.

To generate millions of steps quickly, each (agent, version) has a pool of pre-built run *shapes*
(steps with offsets, latencies and outcomes); a run is a shape placed at a start time under a fresh
run_id, so per-step work is only string formatting.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

GENERATOR_VERSION = 1
SHAPES_PER_VERSION = 400
EPOCH = datetime(1970, 1, 1)

ENVIRONMENTS = (("production", 0.70), ("staging", 0.20), ("development", 0.10))

# step names per type: (name, median latency ms, log-normal sigma, error probability)
PLAN = (("plan_task", 180.0, 0.5, 0.002), ("intent_router", 90.0, 0.4, 0.001))
RETRIEVAL = (("kb_search", 120.0, 0.6, 0.02), ("vector_search", 60.0, 0.5, 0.015), ("order_lookup", 45.0, 0.7, 0.01))
LLM = (("gpt-4o-mini", 850.0, 0.55, 0.02), ("claude-sonnet", 1400.0, 0.5, 0.015), ("llama-3-70b", 1100.0, 0.6, 0.03))
TOOL = (
    ("billing_api", 240.0, 0.7, 0.04),
    ("crm_lookup", 150.0, 0.6, 0.02),
    ("send_email", 300.0, 0.5, 0.01),
    ("search_web", 650.0, 0.8, 0.05),
    ("calendar_api", 200.0, 0.6, 0.02),
    ("code_exec", 900.0, 0.9, 0.06),
)
RESPOND = (("reply_composer", 350.0, 0.4, 0.003), ("summarize", 500.0, 0.5, 0.004))

# agent_id, traffic weight, versions (release order), tools it uses, (worse version, tool slowdown, error factor)
AGENTS: tuple[tuple[str, float, tuple[str, ...], tuple[int, ...], tuple[str, float, float] | None], ...] = (
    ("support-bot", 0.34, ("2.3.0", "2.4.0", "2.4.1", "2.5.0", "2.6.0"), (0, 1, 2), ("2.6.0", 1.8, 2.5)),
    ("billing-agent", 0.22, ("1.0.0", "1.1.0", "1.2.0", "1.3.0"), (0, 1), None),
    ("research-agent", 0.16, ("0.9.0", "0.9.1", "1.0.0"), (3, 1), ("1.0.0", 1.0, 3.0)),
    ("scheduler", 0.12, ("3.1.0", "3.2.0", "3.2.1", "3.3.0"), (4, 2), None),
    ("code-reviewer", 0.10, ("0.4.0", "0.5.0", "0.6.0"), (5, 3), None),
    ("triage-agent", 0.06, ("1.0.0", "1.0.1", "1.1.0"), (1, 2, 0), None),
)

FAILURE_TYPE_BY_STEP = {"tool": "tool", "llm": "model", "retrieval": "retrieval", "plan": "orchestration",
                        "respond": "orchestration"}
ERROR_BY_STEP = {
    "tool": (("TimeoutError", "timeout"), ("HTTPStatusError", "http_error"), ("ConnectError", "connection_error")),
    "llm": (("RateLimitError", "rate_limited"), ("JSONDecodeError", "invalid_output"), ("TimeoutError", "timeout")),
    "retrieval": (("TimeoutError", "timeout"), ("LookupError", "empty_result")),
    "plan": (("ValidationError", "schema_invalid"),),
    "respond": (("ValidationError", "schema_invalid"),),
}


@dataclass(frozen=True)
class ShapeStep:
    seq: int
    step_type: str
    name: str
    status: str
    start_off_us: int
    end_off_us: int
    latency_ms: float
    attempt: int
    retry_of_seq: int | None
    error_class: str | None
    failure_code: str | None
    meta: dict[str, Any]


@dataclass(frozen=True)
class Shape:
    steps: tuple[ShapeStep, ...]
    status: str  # success | failure | partial
    failure: tuple[str, str, int | None, str] | None  # type, code, step_seq, message
    duration_us: int
    error_steps: int
    retries: int
    # pre-rendered per-step suffixes (everything after the timestamps), per output format
    pg_suffixes: tuple[str, ...]
    sqlite_suffixes: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class GeneratedRun:
    run_id: str
    agent_id: str
    agent_version: str
    environment: str
    status: str  # the shape's status, or ``running`` for a run still in flight at ``end``
    start_us: int
    shape: Shape
    meta: dict[str, Any]


@dataclass(frozen=True)
class DatasetSpec:
    runs: int
    seed: int = 20261125
    span_days: float = 30.0
    end: datetime = datetime(2026, 11, 25, 0, 0, tzinfo=timezone.utc)

    @property
    def end_us(self) -> int:
        return _to_us(self.end)

    @property
    def start_us(self) -> int:
        return self.end_us - int(self.span_days * 86_400 * 1_000_000)


def _to_us(dt: datetime) -> int:
    return int((dt.astimezone(timezone.utc).replace(tzinfo=None) - EPOCH) / timedelta(microseconds=1))


def ts_text(us: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff``: naive UTC, exactly as SQLAlchemy stores DateTime on SQLite."""
    return (EPOCH + timedelta(microseconds=us)).isoformat(" ", "microseconds")


def ts_iso_z(us: int) -> str:
    """ISO 8601 with a ``Z``, as the SDK puts timestamps on the wire."""
    return (EPOCH + timedelta(microseconds=us)).isoformat("T", "microseconds") + "Z"


def _lognormal_ms(rng: random.Random, median: float, sigma: float) -> float:
    return round(median * math.exp(rng.gauss(0.0, sigma)), 3)


def _step_meta(rng: random.Random, step_type: str, name: str, status: str) -> dict[str, Any]:
    if step_type == "tool":
        return {"http_status": 200 if status == "ok" else rng.choice((429, 500, 503, 504)),
                "result_count": rng.randint(0, 20)}
    if step_type == "llm":
        return {"model": name, "tokens_in": rng.randint(200, 4000), "tokens_out": rng.randint(20, 800)}
    if step_type == "retrieval":
        return {"result_count": rng.randint(0, 10), "index": "kb-v3"}
    return {}


def _build_shape(rng: random.Random, tools: tuple[int, ...], slow: float, err_factor: float) -> Shape:
    """One run's steps: offsets from the run start, latencies, retries and the outcome."""
    plan: list[tuple[str, tuple[str, float, float, float]]] = [("plan", rng.choice(PLAN))]
    for _ in range(rng.choices((0, 1, 2), (0.25, 0.5, 0.25))[0]):
        plan.append(("retrieval", rng.choice(RETRIEVAL)))
    for _ in range(rng.choices((1, 2, 3, 4, 5, 6), (0.08, 0.17, 0.25, 0.25, 0.15, 0.10))[0]):
        plan.append(("llm", rng.choice(LLM)))
        plan.append(("tool", TOOL[rng.choice(tools)]))
    plan.append(("respond", rng.choice(RESPOND)))

    steps: list[ShapeStep] = []
    t = rng.randint(200, 3000)  # µs between run start and the first step
    status = "success"
    failure: tuple[str, str, int | None, str] | None = None
    error_steps = retries = 0
    stop = False
    for step_type, (name, median, sigma, p_err) in plan:
        if stop:
            break
        if step_type == "tool":
            median *= slow
            p_err *= err_factor
        retry_of: int | None = None
        for attempt in range(1, 4):
            latency = _lognormal_ms(rng, median, sigma)
            failed = rng.random() < p_err
            seq = len(steps) + 1
            err_class = code = None
            if failed:
                err_class, code = rng.choice(ERROR_BY_STEP[step_type])
                latency = round(latency * (3.0 if code == "timeout" else 0.6), 3)
                error_steps += 1
            lat_us = int(latency * 1000)
            steps.append(ShapeStep(seq, step_type, name, "error" if failed else "ok", t, t + lat_us, latency,
                                   attempt, retry_of, err_class, code,
                                   _step_meta(rng, step_type, name, "error" if failed else "ok")))
            if attempt > 1:
                retries += 1
            t += lat_us + rng.randint(100, 5000)
            if not failed:
                break
            if attempt < 3 and step_type in ("tool", "llm", "retrieval") and rng.random() < 0.8:
                retry_of = seq  # retried as a new, linked step
                continue
            # not recovered: fail the run at this step, or carry on and end partial
            if rng.random() < 0.6:
                assert code is not None
                failure = (FAILURE_TYPE_BY_STEP[step_type], code, seq, f"{name} failed after {attempt} attempt(s)")
                status = "failure"
                stop = True
            elif status == "success":
                status = "partial"
            break
    if failure is None and rng.random() < 0.01:
        code = rng.choice(("max_iterations", "unhandled_exception", "cancelled"))
        failure = ("orchestration", code, None, f"run stopped: {code}")
        status = "failure"
    duration_us = t + rng.randint(100, 2000)
    pg_suffixes = tuple(_pg_step_suffix(s) for s in steps)
    sqlite_suffixes = tuple(_sqlite_step_suffix(s) for s in steps)
    return Shape(tuple(steps), status, failure, duration_us, error_steps, retries, pg_suffixes, sqlite_suffixes)


def _nul(v: object) -> str:
    return "\\N" if v is None else str(v)


def _pg_step_suffix(s: ShapeStep) -> str:
    meta = json.dumps(s.meta, separators=(",", ":"))
    return (f"\t{s.latency_ms}\t{s.attempt}\t{_nul(s.retry_of_seq)}\t\\N\t{_nul(s.error_class)}"
            f"\t{_nul(s.failure_code)}\t{meta}\t0\n")


def _sqlite_step_suffix(s: ShapeStep) -> tuple[Any, ...]:
    return (s.latency_ms, s.attempt, s.retry_of_seq, None, s.error_class, s.failure_code,
            json.dumps(s.meta, separators=(",", ":")), 0)


class Generator:
    """Generates ``spec.runs`` runs in start-time order, identically for the same spec."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        rng = random.Random(spec.seed)
        self.shapes: dict[tuple[str, str], list[Shape]] = {}
        for agent_id, _w, versions, tools, worse in AGENTS:
            for version in versions:
                slow, err = (worse[1], worse[2]) if worse and worse[0] == version else (1.0, 1.0)
                self.shapes[(agent_id, version)] = [
                    _build_shape(rng, tools, slow, err) for _ in range(SHAPES_PER_VERSION)
                ]
        self._seed = rng.getrandbits(64)

    def runs(self) -> Iterator[GeneratedRun]:
        spec = self.spec
        rng = random.Random(self._seed)
        span_us = spec.end_us - spec.start_us
        # Busier in working hours: a start time is a uniformly drawn day plus an hour drawn by weight.
        hour_weights = [0.4 + 0.6 * max(0.0, math.sin(math.pi * (h - 6) / 14)) for h in range(24)]
        days = max(1, round(spec.span_days))
        hour_us = 3_600 * 1_000_000
        offsets = []
        for _ in range(spec.runs):
            day = rng.randrange(days)
            hour = rng.choices(range(24), hour_weights)[0]
            off = day * 86_400 * 1_000_000 + hour * hour_us + rng.randrange(hour_us)
            offsets.append(min(off, span_us - 1))
        offsets.sort()
        agent_cum = []
        acc = 0.0
        for a in AGENTS:
            acc += a[1]
            agent_cum.append(acc)
        env_names = [e[0] for e in ENVIRONMENTS]
        env_weights = [e[1] for e in ENVIRONMENTS]
        tiers = ("free", "pro", "enterprise")
        regions = ("eu-west-1", "us-east-1", "ap-southeast-2")
        for off in offsets:
            agent_id, _w, versions, _t, _worse = AGENTS[_pick(agent_cum, rng.random() * acc)]
            frac = off / span_us
            released = max(1, min(len(versions), 1 + int(frac * len(versions))))
            vi = released - 1 if released == 1 or rng.random() < 0.85 else released - 2
            version = versions[vi]
            env = rng.choices(env_names, env_weights)[0]
            shape = rng.choice(self.shapes[(agent_id, version)])
            start_us = spec.start_us + off
            status = shape.status
            if start_us + shape.duration_us > spec.end_us:
                status = "running"
            run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            meta = {"tenant_tier": tiers[rng.randrange(3)], "region": regions[rng.randrange(3)]}
            yield GeneratedRun(run_id, agent_id, version, env, status, start_us, shape, meta)


def _pick(cum: list[float], x: float) -> int:
    for i, c in enumerate(cum):
        if x < c:
            return i
    return len(cum) - 1


# --- output formats -------------------------------------------------------------------------------

RUN_COLUMNS = ("run_id", "agent_id", "agent_version", "environment", "status", "started_at", "ended_at",
               "duration_ms", "step_count", "error_step_count", "retry_count", "failure_type", "failure_code",
               "meta", "meta_removed", "ingested_at", "updated_at")
STEP_COLUMNS = ("run_id", "seq", "step_type", "name", "status", "started_at", "ended_at", "latency_ms",
                "attempt", "retry_of_seq", "parent_seq", "error_class", "failure_code", "meta", "meta_removed")
FAILURE_COLUMNS = ("run_id", "failure_type", "failure_code", "step_seq", "message", "recorded_at")


def copy_lines(run: GeneratedRun) -> tuple[str, str, str | None]:
    """PostgreSQL COPY text for one run: (runs line, steps lines, failures line or None)."""
    shape = run.shape
    start = run.start_us
    running = run.status == "running"
    end_us = start + shape.duration_us
    started = ts_text(start) + "+00"
    ended = "\\N" if running else ts_text(end_us) + "+00"
    duration = "\\N" if running else str(shape.duration_us / 1000)
    ftype, fcode = (shape.failure[0], shape.failure[1]) if shape.failure and not running else ("\\N", "\\N")
    seen = ts_text(min(end_us, run.start_us + shape.duration_us)) + "+00"
    meta = json.dumps(run.meta, separators=(",", ":"))
    run_line = (f"{run.run_id}\t{run.agent_id}\t{run.agent_version}\t{run.environment}\t{run.status}\t{started}"
                f"\t{ended}\t{duration}\t{len(shape.steps)}\t{shape.error_steps}\t{shape.retries}\t{ftype}\t{fcode}"
                f"\t{meta}\t0\t{seen}\t{seen}\n")
    rid = run.run_id
    parts = []
    for s, suffix in zip(shape.steps, shape.pg_suffixes, strict=False):
        parts.append(f"{rid}\t{s.seq}\t{s.step_type}\t{s.name}\t{s.status}\t{ts_text(start + s.start_off_us)}+00"
                     f"\t{ts_text(start + s.end_off_us)}+00{suffix}")
    failure_line = None
    if shape.failure is not None and not running:
        ft, fc, fseq, msg = shape.failure
        failure_line = f"{rid}\t{ft}\t{fc}\t{_nul(fseq)}\t{msg}\t{ts_text(end_us)}+00\n"
    return run_line, "".join(parts), failure_line


def sqlite_rows(run: GeneratedRun) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], tuple[Any, ...] | None]:
    """Row tuples for SQLite in the column order of RUN_COLUMNS / STEP_COLUMNS / FAILURE_COLUMNS."""
    shape = run.shape
    start = run.start_us
    running = run.status == "running"
    end_us = start + shape.duration_us
    ftype, fcode = (shape.failure[0], shape.failure[1]) if shape.failure and not running else (None, None)
    seen = ts_text(end_us)
    run_row = (run.run_id, run.agent_id, run.agent_version, run.environment, run.status, ts_text(start),
               None if running else ts_text(end_us), None if running else shape.duration_us / 1000,
               len(shape.steps), shape.error_steps, shape.retries, ftype, fcode,
               json.dumps(run.meta, separators=(",", ":")), 0, seen, seen)
    rid = run.run_id
    step_rows = [
        (rid, s.seq, s.step_type, s.name, s.status, ts_text(start + s.start_off_us), ts_text(start + s.end_off_us),
         *suffix)
        for s, suffix in zip(shape.steps, shape.sqlite_suffixes, strict=False)
    ]
    failure_row = None
    if shape.failure is not None and not running:
        ft, fc, fseq, msg = shape.failure
        failure_row = (rid, ft, fc, fseq, msg, ts_text(end_us))
    return run_row, step_rows, failure_row


def wire_events(run: GeneratedRun, time_shift_us: int = 0) -> list[dict[str, Any]]:
    """The events an SDK would send for this run (run_start, steps, failure?, run_end), in that order."""
    shape = run.shape
    start = run.start_us + time_shift_us
    identity = {"run_id": run.run_id, "agent_id": run.agent_id, "agent_version": run.agent_version,
                "environment": run.environment}
    events: list[dict[str, Any]] = [{"type": "run_start", **identity, "started_at": ts_iso_z(start),
                                     "metadata": run.meta}]
    for s in shape.steps:
        ev: dict[str, Any] = {
            "type": "step", "run_id": run.run_id, "seq": s.seq, "step_type": s.step_type, "name": s.name,
            "started_at": ts_iso_z(start + s.start_off_us), "ended_at": ts_iso_z(start + s.end_off_us),
            "latency_ms": s.latency_ms, "status": s.status, "attempt": s.attempt,
        }
        if s.retry_of_seq is not None:
            ev["retry_of_seq"] = s.retry_of_seq
        if s.error_class is not None:
            ev["error_class"] = s.error_class
            ev["failure_code"] = s.failure_code
        if s.meta:
            ev["metadata"] = s.meta
        events.append(ev)
    end_us = start + shape.duration_us
    status = shape.status
    if shape.failure is not None:
        ft, fc, fseq, msg = shape.failure
        fail: dict[str, Any] = {"type": "failure", "run_id": run.run_id, "failure_type": ft, "failure_code": fc,
                                "message": msg, "recorded_at": ts_iso_z(end_us)}
        if fseq is not None:
            fail["step_seq"] = fseq
        events.append(fail)
    events.append({"type": "run_end", **identity, "ended_at": ts_iso_z(end_us), "status": status,
                   "metadata": run.meta})
    return events
