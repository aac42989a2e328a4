"""The instrumentation API: ``AgentTracer`` makes runs, a ``Run`` makes ordered steps, a ``Step``
(``sdk/step.py``) times one action.

The hot path — ``run.step(...)`` plus the step's enter and exit — does only this: read a monotonic
clock twice, take the next seq from an ``itertools.count`` (atomic in CPython), track the current step in
a ``ContextVar`` (so nested steps know their parent per thread and per asyncio task), and offer one
step record (a plain tuple in ``StepRecord``'s field order) to the tracer's bounded queue
(``Transport.offer``). Wall-clock times are derived later, in the worker, from the run's (wall,
monotonic) anchor taken when the run started; dicts, ISO strings, privacy checks, JSON
and gzip all happen there too (see ``agenttracer.sdk.encode`` and ``agenttracer.sdk.transport``).

Nothing here raises into agent code once the tracer exists: exceptions from the agent's own blocks
propagate unchanged, and the SDK's own bookkeeping never adds one.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any

from agenttracer.model import FailureType, RunStatus
from agenttracer.sdk import context
from agenttracer.sdk.config import TracerConfig, resolve_config
from agenttracer.sdk.counts import DeliveryStats
from agenttracer.sdk.decorators import F, traced
from agenttracer.sdk.encode import FailureRecord, RunEndRecord, RunStartRecord
from agenttracer.sdk.noop import NOOP_RUN, NoopRun
from agenttracer.sdk.retry import Retrying
from agenttracer.sdk.step import Step
from agenttracer.sdk.transport import Transport
from agenttracer.verdict import RetryLinker, status_of

log = logging.getLogger("agenttracer")

_perf_ns = time.perf_counter_ns
_current_run = context.RUN

_RUN_ID_MAX = 36


class Run:
    """One execution of an agent: ``with tracer.start_run() as run:`` (or ``async with``).

    Its status when the block ends follows the one verdict rule (``agenttracer.verdict``,
    docs/failure-handling.md): ``failure`` if a failure was recorded or an exception escaped (recorded
    as orchestration / unhandled_exception unless a failure was recorded first; the exception
    propagates unchanged); otherwise ``partial`` if ``mark_partial()`` was called or some error step
    was never recovered; otherwise ``success``.
    """

    __slots__ = ("__weakref__", "_agent_id", "_agent_version", "_attempts", "_ended", "_environment",
                 "_failure", "_fate", "_last_error", "_linker", "_meta", "_mono0", "_offer", "_open_chains",
                 "_partial", "_retry_links", "_seq", "_started", "_token", "_transport", "_unrecovered", "_wall0",
                 "run_id", "status")

    def __init__(self, config: TracerConfig, transport: Transport, metadata: Mapping[str, Any] | None,
                 run_id: str | None) -> None:
        self.run_id = run_id or str(uuid.uuid4())
        self._agent_id = config.agent_id
        self._agent_version = config.agent_version
        self._environment = config.environment
        self._transport = transport
        self._offer = transport.offer  # bound once: the step hot path calls it
        self._meta: dict[str, Any] = dict(metadata) if isinstance(metadata, Mapping) else {}
        self._seq = itertools.count(1)
        self._failure: tuple[str, str] | None = None
        self._partial = False
        self._unrecovered: set[int] = set()
        self._retry_links: dict[int, int] = {}
        self._attempts: dict[int, int] = {}
        self._last_error: tuple[int, int, int | None] | None = None  # (seq, id of the exception, parent seq)
        # The retry rule (agenttracer.verdict): the most recent failed attempt per action. Steps read
        # ``_open_chains`` (the linker's own dict) first: empty, it costs them one truth test.
        self._linker: RetryLinker[int] = RetryLinker()
        self._open_chains = self._linker.failed
        # Container fate: a step that failed through the exception of the error step directly under
        # it -> that step (child seq -> container seq).
        self._fate: dict[int, int] = {}
        self._started = False
        self._ended = False
        self._token: Token[Run | None] | None = None
        self._mono0 = _perf_ns()
        self._wall0 = time.time_ns()
        self.status = RunStatus.RUNNING.value

    @property
    def agent_id(self) -> str:
        return self._agent_id

    @property
    def agent_version(self) -> str:
        return self._agent_version

    @property
    def environment(self) -> str:
        return self._environment

    # -------------------------------------------------------------- steps

    def step(self, step_type: str, name: str | None = None, *, metadata: Mapping[str, Any] | None = None,
             retry_of: Step | int | None = None, attempt: int | None = None) -> Step:
        """A step context manager.

        A step of the same action (type and name) as an earlier attempt that failed is linked to it as
        its retry automatically (docs/failure-handling.md); ``retry_of`` names the attempt by hand
        instead, and ``attempt`` states the attempt number a framework counted itself.
        """
        return Step(self, step_type, name, metadata, retry_of, attempt)

    def begin_step(self, step_type: str, name: str | None = None, *, metadata: Mapping[str, Any] | None = None,
                   retry_of: Step | int | None = None, parent: Step | int | None = None,
                   attempt: int | None = None) -> Step:
        """A step that starts now and ends at ``step.end(...)``, for code driven by callbacks.

        Unlike ``with run.step(...)`` it never becomes the current step (callbacks may start and end it
        in different threads or contexts), so its enclosing step is given as ``parent`` (a ``Step`` of
        this run or a seq), not taken from the context. Retries link as for ``step``.
        """
        step = Step(self, step_type, name, metadata, retry_of, attempt)
        step._t0 = _perf_ns()
        step._seq = next(self._seq)
        step._parent = parent.seq if isinstance(parent, Step) else (
            parent if isinstance(parent, int) and not isinstance(parent, bool) and parent > 0 else None)
        if self._open_chains and step._retry_of_seq is None:
            step.attempt, step._retry_of_seq = self._linker.start(step_type, step.name,
                                                                 step.attempt if step.attempt > 1 else None)
        return step

    def retrying(self, step_type: str, name: str | None = None, *, attempts: int = 3,
                 retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
                 backoff: float = 0.0, backoff_factor: float = 2.0,
                 metadata: Mapping[str, Any] | None = None) -> Retrying:
        """Attempts of one action, each recorded as its own step linked to the one it retries.

        See ``agenttracer.sdk.retry.Retrying`` for the loop this returns.
        """
        return Retrying(self.step, step_type, name, attempts=attempts, retry_on=retry_on, backoff=backoff,
                        backoff_factor=backoff_factor, metadata=metadata)

    def wall_ns(self, t_ns: int) -> int:
        """Wall-clock nanoseconds (UTC epoch) for a ``perf_counter_ns`` reading taken during this run."""
        return self._wall0 + (t_ns - self._mono0)

    def _retry_link(self, retry_of: Step | int) -> tuple[int, int | None]:
        if isinstance(retry_of, Step):
            if retry_of.seq is None:
                log.warning("agenttracer: retry_of points at a step that never started; not linked")
                return 1, None
            return retry_of.attempt + 1, retry_of.seq
        if isinstance(retry_of, int) and not isinstance(retry_of, bool) and retry_of > 0:
            return self._attempts.get(retry_of, 1) + 1, retry_of
        log.warning("agenttracer: retry_of must be a Step or a seq number; not linked")
        return 1, None

    def _errored(self, step: Step, exc: BaseException | None) -> None:
        """An error step ended: it is unrecovered until a later attempt works, and it is now the most
        recent failed attempt of its action."""
        seq = step._seq
        self._unrecovered.add(seq)
        last = self._last_error
        if last is not None and last[2] == seq and exc is not None and _same_exception(exc, last[1]):
            self._fate[last[0]] = seq  # the error directly under this step propagated out of it
        self._last_error = (seq, id(exc), step._parent)
        retry_of_seq = step._retry_of_seq
        if retry_of_seq is not None:
            self._retry_links[seq] = retry_of_seq
        self._attempts[seq] = step.attempt
        self._linker.end(step.step_type, step.name, seq, step.attempt, True)

    def _succeeded(self, step: Step) -> None:
        """A step ended ok while some chain is open: it ends its action's chain and recovers the
        attempts it retried."""
        self._linker.end(step.step_type, step.name, step._seq, step.attempt, False)
        if step._retry_of_seq is not None:
            self._recovered(step._retry_of_seq)

    def _recovered(self, retry_of_seq: int) -> None:
        # A successful attempt recovers every earlier attempt in its chain, and each container that
        # failed only through one of them.
        pending = [retry_of_seq]
        for _ in range(10_000):
            if not pending:
                break
            seq = pending.pop()
            self._unrecovered.discard(seq)
            for more in (self._retry_links.get(seq), self._fate.get(seq)):
                if more is not None:
                    pending.append(more)

    # ------------------------------------------------------------- run level

    def set(self, **metadata: Any) -> Run:
        """Attach safe run metadata (sent with the run's end)."""
        self._meta.update(metadata)
        return self

    def record_failure(self, failure_type: FailureType | str, failure_code: str, message: str | None = None,
                       step: Step | int | None = None) -> None:
        """Record the run's failure (at most one per run; a second call is ignored with a warning).

        ``step`` links the failure to the step that caused it; when omitted, the failure is linked to the
        most recent step of this run that ended in error, if any — which is what the usual
        ``try: with run.step(...) ... except ...: run.record_failure(...)`` pattern means.
        The run ends with status ``failure``. The message passes the privacy policy before it is sent.
        """
        if self._failure is not None:
            log.warning("agenttracer: a run has at most one failure; the second record_failure() is ignored")
            return
        if isinstance(step, Step):
            step_seq = step.seq
        elif isinstance(step, int) and not isinstance(step, bool):
            step_seq = step
        else:
            step_seq = self._last_error[0] if self._last_error is not None else None
        self._failure = (str(getattr(failure_type, "value", failure_type)), failure_code)
        self._offer(FailureRecord(self, failure_type, failure_code, step_seq, message, _perf_ns()), True)

    def mark_partial(self) -> None:
        """End this run as ``partial`` unless it fails: it completed, but not everything it tried worked."""
        self._partial = True

    def start(self, *, current: bool = True) -> Run:
        """Start the run (what ``with`` does); for code that cannot use a ``with`` block.

        ``current=False`` leaves ``current_run()`` alone: for runs started and ended by callbacks, whose
        start and end need not nest with other runs' in one context.
        """
        if self._started:
            return self
        self._started = True
        self._mono0 = _perf_ns()
        self._wall0 = time.time_ns()
        self._offer(RunStartRecord(self, self._mono0, dict(self._meta) if self._meta else None), True)
        if current:
            self._token = _current_run.set(self)
        return self

    def end(self, exc: BaseException | None = None) -> None:
        """End the run (what leaving the ``with`` block does); pass the exception that ended it, if any."""
        self._end(exc is not None, exc)

    def _end(self, escaped: bool, exc: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        t_end = _perf_ns()
        if escaped and self._failure is None:
            self._failure = (FailureType.ORCHESTRATION.value, "unhandled_exception")
            self._offer(FailureRecord(self, FailureType.ORCHESTRATION.value, "unhandled_exception",
                                      self._step_that_raised(exc), None, t_end), True)
        status = status_of(failure_recorded=self._failure is not None, invocation_failed=escaped,
                           unrecovered=self._partial or bool(self._unrecovered))
        self.status = status
        self._linker.forget()
        self._offer(RunEndRecord(self, t_end, status, dict(self._meta) if self._meta else None), True)
        token, self._token = self._token, None
        if token is not None:
            with contextlib.suppress(ValueError):  # ended in another context than it started in
                _current_run.reset(token)

    def _step_that_raised(self, exc: BaseException | None) -> int | None:
        """The error step whose exception (or one it caused) escaped the run, if there is one."""
        last = self._last_error
        if last is None or exc is None or not _same_exception(exc, last[1]):
            return None
        return last[0]

    def __enter__(self) -> Run:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._end(exc_type is not None, exc)
        return None

    async def __aenter__(self) -> Run:
        return self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


def _same_exception(exc: BaseException, exc_id: int) -> bool:
    """Whether ``exc`` is the exception with this id, or was raised from it (``raise … from``)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if id(seen) == exc_id:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class AgentTracer:
    """Instruments one agent: ``AgentTracer(agent_id, agent_version, environment, api_url, api_key=None)``;
    ``project=`` names its runs' project when the server runs without keys (docs/sdk.md, "Projects").

    Every argument left out (or None) is read from ``AGENTTRACER_<NAME>`` (``AGENTTRACER_API_URL``,
    ``AGENTTRACER_API_KEY``, ``AGENTTRACER_AGENT_ID``…), then falls back to a default; see docs/sdk.md.
    A wrong value raises ``ValueError`` here, at construction — never later, on the agent's path.
    Set ``tracer.enabled = False`` (or ``AGENTTRACER_ENABLED=0``) to make new runs cheap no-ops.
    """

    def __init__(self, agent_id: str | None = None, agent_version: str | None = None,
                 environment: str | None = None, api_url: str | None = None, api_key: str | None = None, *,
                 enabled: bool | None = None, max_queue_size: int | None = None, batch_size: int | None = None,
                 flush_interval: float | None = None, timeout: float | None = None,
                 exit_timeout: float | None = None, max_backoff: float | None = None,
                 project: str | None = None) -> None:
        self.config = resolve_config({
            "agent_id": agent_id, "agent_version": agent_version, "environment": environment, "project": project,
            "api_url": api_url, "api_key": api_key, "enabled": enabled, "max_queue_size": max_queue_size,
            "batch_size": batch_size, "flush_interval": flush_interval, "timeout": timeout,
            "exit_timeout": exit_timeout, "max_backoff": max_backoff,
        })
        self._transport: Transport | None = None
        self._enabled = False
        self.enabled = self.config.enabled

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        # The worker starts with the first enabled moment, so a disabled tracer costs no thread at all.
        if value and self._transport is None:
            self._transport = Transport(self.config)
        self._enabled = bool(value)

    def start_run(self, metadata: Mapping[str, Any] | None = None, *, run_id: str | None = None) -> Run | NoopRun:
        """A new run; use it as ``with tracer.start_run() as run:`` or ``async with``."""
        if not self._enabled or self._transport is None:
            return NOOP_RUN
        if run_id is not None and (not isinstance(run_id, str) or not 0 < len(run_id) <= _RUN_ID_MAX):
            raise ValueError(f"run_id must be a non-empty string of at most {_RUN_ID_MAX} characters (a UUID)")
        return Run(self.config, self._transport, metadata, run_id)

    def traced(self, step_type: str, name: str | None = None, *,
               metadata: Mapping[str, Any] | None = None) -> Callable[[F], F]:
        """Decorator: each call of the function (sync or async) is a step of the current run.

        Outside a run the function simply runs. The step name defaults to the function's name.
        """
        return traced(step_type, name, metadata=metadata)

    def stats(self) -> DeliveryStats:
        """Produced / delivered / dropped-by-reason / retried counts (see ``DeliveryStats``)."""
        if self._transport is None:
            return DeliveryStats(produced=0, delivered=0, dropped={}, retried=0, queued=0, in_flight=0)
        return self._transport.stats()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (at most ``timeout`` s) until everything recorded so far is delivered or dropped."""
        if self._transport is None:
            return True
        return self._transport.flush(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout`` s, then stop; the rest counts as dropped."""
        self._enabled = False
        if self._transport is not None:
            self._transport.shutdown(timeout)

    def __enter__(self) -> AgentTracer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown(self.config.exit_timeout)
