"""A step of a run: ``Step`` times one action between enter and exit, or between ``Run.begin_step`` and ``end``.

The hot path of the SDK lives here (``__enter__``/``__exit__``): two monotonic clock reads, the next seq
of the run, the current step tracked in a ``ContextVar``, and one small tuple (in ``StepRecord``'s field
order) offered to the tracer's bounded queue (``Transport.offer``). Everything that costs happens later,
in the delivery worker (``agenttracer.sdk.encode``). The run-level bookkeeping a step reports to (errors,
retry links) belongs to ``Run`` in ``agenttracer.sdk.tracer``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agenttracer.failure_codes import failure_code_for_exception
from agenttracer.model import MAX_ATTEMPT
from agenttracer.sdk import context

if TYPE_CHECKING:
    from agenttracer.sdk.tracer import Run

log = logging.getLogger("agenttracer")

_perf_ns = time.perf_counter_ns
_current_step = context.STEP

_warned_late_set = False


class Step:
    """One action of a run, timed between ``__enter__`` and ``__exit__`` (sync or async ``with``).

    ``seq`` is assigned when the block is entered. A block that raises is recorded as an error step
    with the exception's class name and a mapped failure code (never its message); the exception
    propagates unchanged. ``set(**metadata)`` attaches safe metadata (checked later, off the hot path).
    """

    # Only what the hot path needs is written eagerly; seq, parent, end time and error are written when
    # they happen and read through properties (``None`` until then).
    __slots__ = ("_err", "_meta", "_parent", "_retry_of_seq", "_run", "_seq", "_t0", "_t1", "_token", "attempt",
                 "name", "step_type")

    def __init__(self, run: Run, step_type: str, name: str | None, metadata: Mapping[str, Any] | None,
                 retry_of: Step | int | None, attempt: int | None = None) -> None:
        self._run = run
        self.step_type = step_type
        self.name = step_type if name is None else name
        # Kept by reference (copying costs on the hot path); set() never mutates it, and the worker only
        # reads it, checking its type there.
        self._meta = metadata
        if retry_of is None:
            # A stated attempt (a framework's own retry counter) is kept; the retry link, if any, is
            # found when the step starts (``agenttracer.verdict.RetryLinker``).
            self.attempt = attempt if attempt.__class__ is int and 1 <= attempt <= MAX_ATTEMPT else 1
            self._retry_of_seq: int | None = None
        else:
            self.attempt, self._retry_of_seq = run._retry_link(retry_of)

    @property
    def seq(self) -> int | None:
        """The step's position in its run (1, 2, 3…), assigned when the block is entered."""
        return getattr(self, "_seq", None)

    @property
    def parent_seq(self) -> int | None:
        """The seq of the enclosing step of the same run, if this step is nested."""
        return getattr(self, "_parent", None)

    @property
    def retry_of_seq(self) -> int | None:
        """The seq of the attempt this step retries, if it is a retry."""
        return self._retry_of_seq

    @property
    def error_class(self) -> str | None:
        """The class name of the exception that ended the block, if any."""
        return getattr(self, "_err", None)

    @property
    def latency_ms(self) -> float | None:
        """Latency from the monotonic clock, once the step has ended."""
        t1 = getattr(self, "_t1", None)
        return None if t1 is None else (t1 - self._t0) / 1_000_000

    @property
    def status(self) -> str | None:
        """``ok`` or ``error`` once the step has ended."""
        if getattr(self, "_t1", None) is None:
            return None
        return "ok" if self.error_class is None else "error"

    def set(self, **metadata: Any) -> Step:
        """Attach safe metadata (counts, codes, ids — never content); returns the step for chaining."""
        global _warned_late_set
        if getattr(self, "_t1", None) is not None:
            if not _warned_late_set:
                _warned_late_set = True
                log.warning("agenttracer: step.set() after the step ended is ignored")
            return self
        current = self._meta
        self._meta = {**current, **metadata} if isinstance(current, Mapping) and current else metadata
        return self

    def __enter__(self) -> Step:
        self._t0 = _perf_ns()
        run = self._run
        self._seq = next(run._seq)
        outer = _current_step.get()
        self._parent = outer._seq if outer is not None and outer._run is run else None
        self._token = _current_step.set(self)
        if run._open_chains and self._retry_of_seq is None:  # an empty dict while nothing has failed
            self.attempt, self._retry_of_seq = run._linker.start(self.step_type, self.name,
                                                                 self.attempt if self.attempt > 1 else None)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        t1 = self._t1 = _perf_ns()
        # Not contextlib.suppress: this is the hot path, and a bare try costs nothing when nothing raises.
        try:  # noqa: SIM105
            _current_step.reset(self._token)
        except (ValueError, AttributeError):  # exited in another context, or never entered
            pass
        run = self._run
        retry_of_seq = self._retry_of_seq
        if exc_type is None:
            error_class = failure_code = None
            if run._open_chains:
                run._succeeded(self)
        else:
            error_class = self._err = exc_type.__name__
            failure_code = failure_code_for_exception(exc) if exc is not None else "unhandled_exception"
            run._errored(self, exc)
        # Queued, or counted as dropped when the queue is full: never waited for.
        run._offer((run, self._seq, self._parent, self.step_type, self.name, self._t0, t1, error_class, failure_code,
                    self._meta, self.attempt, retry_of_seq))
        return None

    async def __aenter__(self) -> Step:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    def end(self, exc: BaseException | None = None, *, error_class: str | None = None,
            failure_code: str | None = None) -> None:
        """End a step opened with ``Run.begin_step`` (from any thread); a second call is ignored.

        ``exc``: the exception that ended it (class name and mapped failure code, as a raising ``with``
        block records them). Without an exception object, ``error_class`` (and ``failure_code``, default
        ``unhandled_exception``) record an error step all the same; with neither, the step ended ok.
        """
        if getattr(self, "_t1", None) is not None or getattr(self, "_seq", None) is None:
            return
        if exc is not None or error_class is None:
            self.__exit__(None if exc is None else type(exc), exc, None)
            return
        t1 = self._t1 = _perf_ns()
        run = self._run
        error_class = self._err = str(error_class)
        code = failure_code if isinstance(failure_code, str) else "unhandled_exception"
        run._errored(self, None)
        run._offer((run, self._seq, self._parent, self.step_type, self.name, self._t0, t1, error_class, code,
                    self._meta, self.attempt, self._retry_of_seq))
