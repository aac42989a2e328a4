"""Turn the records queued on the agent's thread into wire events (runs in the worker thread).

The hot path records only monotonic nanoseconds, a seq and references. Everything that costs —
wall-clock conversion, ISO strings, vocabulary checks and the privacy policy — happens here, in the
background, before anything leaves the process. See ``agenttracer.model`` for the event shape.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, NamedTuple

from agenttracer import privacy
from agenttracer.model import (
    MAX_ERROR_CLASS_LEN,
    SERVER_FAILURE_CODE_RULE,
    SERVER_FAILURE_CODES,
    EventType,
    FailureType,
    StepType,
    is_valid_failure_code,
    normalize_step_type,
)

log = logging.getLogger("agenttracer")



# The records the agent side queues: one named type per event kind. Times are perf_counter_ns readings
# (turned into wall-clock time here, from the run's anchor); ``run`` is the ``Run`` (read for its ids);
# metadata is kept by reference and checked here.
class RunStartRecord(NamedTuple):
    run: Any
    t_ns: int
    metadata: Mapping[str, Any] | None


class StepRecord(NamedTuple):
    run: Any
    seq: int
    parent_seq: int | None
    step_type: str
    name: str
    t0_ns: int
    t1_ns: int
    error_class: str | None
    failure_code: str | None
    metadata: Any
    attempt: int
    retry_of_seq: int | None


class FailureRecord(NamedTuple):
    run: Any
    failure_type: Any  # FailureType or str, checked here
    failure_code: Any
    step_seq: int | None
    message: Any
    t_ns: int


class RunEndRecord(NamedTuple):
    run: Any
    t_ns: int
    status: str
    metadata: Mapping[str, Any] | None


# A step is queued as a plain tuple in StepRecord's field order, read here as a StepRecord: building a
# NamedTuple instance on the agent's thread (even with tuple.__new__, one C call) cost ~0.2 µs more per
# step in bench/sdk_overhead.py, a fifth of the whole hot path. The other records are rare (one or two
# per run) and are built as themselves.
Record = RunStartRecord | FailureRecord | RunEndRecord | tuple[Any, ...]

_RUN_START, _STEP, _FAILURE, _RUN_END = (t.value for t in (EventType.RUN_START, EventType.STEP, EventType.FAILURE,
                                                            EventType.RUN_END))
_STEP_TYPES = frozenset(t.value for t in StepType)
_FAILURE_TYPES = frozenset(t.value for t in FailureType)


def iso_utc(wall_ns: int) -> str:
    """``2026-11-25T09:00:00.123456Z`` from nanoseconds since the epoch."""
    seconds, rest = divmod(wall_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"


class Encoder:
    """Builds wire events and tallies what the privacy policy or the vocabulary made it change.

    ``removed`` counts metadata keys, names and messages the policy removed, by ``field:reason``;
    ``coerced`` counts values mapped onto the vocabulary (an unknown step type becomes ``other``).
    Neither ever holds a value, only reason codes.
    """

    def __init__(self) -> None:
        self.removed: Counter[str] = Counter()
        self.coerced: Counter[str] = Counter()
        self._warned: set[str] = set()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("agenttracer: %s", message)

    def _metadata(self, where: str, meta: Any) -> dict[str, Any] | None:
        if not meta:
            return None
        if not isinstance(meta, Mapping):
            self.removed[f"{where}_metadata:not_a_mapping"] += 1
            return None
        kept, removed = privacy.scrub_metadata(meta)
        for removal in removed:
            self.removed[f"{where}_metadata:{removal.reason}"] += 1
        if removed:
            self._warn_once(f"meta:{where}", f"{where} metadata keys were removed by the privacy policy "
                            "(counted in tracer.stats().removed; values are never logged)")
        return kept or None

    def _identity(self, run: Any) -> dict[str, Any]:
        return {"run_id": run.run_id, "agent_id": run.agent_id, "agent_version": run.agent_version,
                "environment": run.environment}

    def encode(self, item: Record) -> tuple[dict[str, Any] | None, str | None]:
        """The wire event for one record, or (None, reason) when it must be dropped."""
        if isinstance(item, RunStartRecord):
            event = {"type": _RUN_START, **self._identity(item.run), "started_at": iso_utc(item.run.wall_ns(item.t_ns))}
            return self._with_metadata(event, item.metadata), None
        if isinstance(item, RunEndRecord):
            event = {"type": _RUN_END, **self._identity(item.run), "ended_at": iso_utc(item.run.wall_ns(item.t_ns)),
                     "status": item.status}
            return self._with_metadata(event, item.metadata), None
        if isinstance(item, FailureRecord):
            return self._failure(item)
        if type(item) is tuple:
            return self._step(item), None
        return None, "internal_error"

    def _with_metadata(self, event: dict[str, Any], meta: Any) -> dict[str, Any]:
        kept = self._metadata("run", meta)
        if kept:
            event["metadata"] = kept
        return event

    def _step(self, item: tuple[Any, ...]) -> dict[str, Any]:
        # A StepRecord's fields, in its order (unpacked directly: no StepRecord is built for it).
        (run, seq, parent_seq, step_type, name, t0, t1, error_class, failure_code, meta, attempt,
         retry_of_seq) = item
        if not isinstance(step_type, str) or step_type not in _STEP_TYPES:
            try:
                step_type = normalize_step_type(step_type).value
            except ValueError:
                self.coerced["step_type"] += 1
                self._warn_once("step_type", "an unknown step type was recorded as 'other'; use one of "
                                + ", ".join(sorted(_STEP_TYPES)) + " or a documented alias")
                step_type = StepType.OTHER.value
        name = name if isinstance(name, str) else str(name)
        name, reason = privacy.scrub_name(name or step_type)
        if reason:
            self.removed[f"step_name:{reason}"] += 1
        event: dict[str, Any] = {
            "type": _STEP,
            "run_id": run.run_id,
            "seq": seq,
            "step_type": step_type,
            "name": name,
            "started_at": iso_utc(run.wall_ns(t0)),
            "ended_at": iso_utc(run.wall_ns(t1)),
            "latency_ms": (t1 - t0) / 1_000_000,
            "status": "ok" if error_class is None else "error",
            "attempt": attempt,
        }
        if retry_of_seq is not None:
            event["retry_of_seq"] = retry_of_seq
        if parent_seq is not None:
            event["parent_seq"] = parent_seq
        if error_class is not None:
            error_class, reason = privacy.scrub_name(str(error_class)[:MAX_ERROR_CLASS_LEN])
            if reason:
                self.removed[f"error_class:{reason}"] += 1
            event["error_class"] = error_class
            event["failure_code"] = failure_code
        kept = self._metadata("step", meta)
        if kept:
            event["metadata"] = kept
        return event

    def _failure(self, item: FailureRecord) -> tuple[dict[str, Any] | None, str | None]:
        run, failure_type, failure_code, step_seq, message, t_ns = item
        if isinstance(failure_type, FailureType):
            failure_type = failure_type.value
        if failure_type not in _FAILURE_TYPES:
            self._warn_once("failure_type", "record_failure(failure_type=...) must be one of "
                            + ", ".join(sorted(_FAILURE_TYPES)) + "; that failure was not sent")
            return None, "invalid_failure"
        if not is_valid_failure_code(failure_code):
            self._warn_once("failure_code", "record_failure(failure_code=...) must be a documented code or "
                            "match ^[a-z][a-z0-9_]{0,63}$; that failure was not sent")
            return None, "invalid_failure"
        if failure_code in SERVER_FAILURE_CODES:
            self._warn_once("failure_code_server", f"record_failure(failure_code={failure_code!r}) "
                            f"{SERVER_FAILURE_CODE_RULE}; that failure was not sent")
            return None, "invalid_failure"
        event: dict[str, Any] = {"type": _FAILURE, "run_id": run.run_id, "failure_type": failure_type,
                                 "failure_code": failure_code, "recorded_at": iso_utc(run.wall_ns(t_ns))}
        if step_seq is not None:
            event["step_seq"] = step_seq
        if message is not None:
            text, reason = privacy.scrub_message(message if isinstance(message, str) else str(message))
            if reason:
                self.removed[f"failure_message:{reason}"] += 1
            if text:
                event["message"] = text
        return event, None
