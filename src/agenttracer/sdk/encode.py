"""Turn the small tuples recorded on the agent's thread into wire events (runs in the worker thread).

The hot path records only monotonic nanoseconds, a seq and references. Everything that costs —
wall-clock conversion, ISO strings, vocabulary checks and the privacy policy — happens here, in the
background, before anything leaves the process. See ``agenttracer.model`` for the event shape.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from agenttracer import privacy
from agenttracer.model import (
    MAX_ERROR_CLASS_LEN,
    FailureType,
    StepType,
    is_valid_failure_code,
    normalize_step_type,
)

log = logging.getLogger("agenttracer")

# Record kinds: the first element of every tuple the agent side puts on the queue.
RUN_START = 0  # (RUN_START, run, t_ns, metadata)
STEP = 1  # (STEP, run, seq, parent_seq, step_type, name, t0_ns, t1_ns, error_class, failure_code,
#            metadata, attempt, retry_of_seq)
FAILURE = 2  # (FAILURE, run, failure_type, failure_code, step_seq, message, t_ns)
RUN_END = 3  # (RUN_END, run, t_ns, status, metadata)

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
        return {"run_id": run.run_id, "agent_id": run._agent_id, "agent_version": run._agent_version,
                "environment": run._environment}

    def encode(self, item: tuple[Any, ...]) -> tuple[dict[str, Any] | None, str | None]:
        """The wire event for one record, or (None, reason) when it must be dropped."""
        kind = item[0]
        if kind == STEP:
            return self._step(item), None
        if kind == RUN_START:
            _, run, t_ns, meta = item
            event = {"type": "run_start", **self._identity(run), "started_at": iso_utc(run.wall_ns(t_ns))}
            kept = self._metadata("run", meta)
            if kept:
                event["metadata"] = kept
            return event, None
        if kind == RUN_END:
            _, run, t_ns, status, meta = item
            event = {"type": "run_end", **self._identity(run), "ended_at": iso_utc(run.wall_ns(t_ns)),
                     "status": status}
            kept = self._metadata("run", meta)
            if kept:
                event["metadata"] = kept
            return event, None
        if kind == FAILURE:
            return self._failure(item)
        return None, "internal_error"

    def _step(self, item: tuple[Any, ...]) -> dict[str, Any]:
        (_, run, seq, parent_seq, step_type, name, t0, t1, error_class, failure_code, meta, attempt,
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
            "type": "step",
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

    def _failure(self, item: tuple[Any, ...]) -> tuple[dict[str, Any] | None, str | None]:
        _, run, failure_type, failure_code, step_seq, message, t_ns = item
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
        event: dict[str, Any] = {"type": "failure", "run_id": run.run_id, "failure_type": failure_type,
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
