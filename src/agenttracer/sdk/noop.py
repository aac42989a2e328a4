"""What a disabled tracer hands out: a run and steps with the real API that record nothing."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from agenttracer.sdk.retry import Retrying


class NoopStep:
    """Stands in for ``Step``; stateless, so one instance serves every call."""

    __slots__ = ()
    seq = None
    parent_seq = None
    attempt = 1
    error_class = None
    latency_ms = None
    status = None

    def set(self, **metadata: Any) -> NoopStep:
        return self

    def end(self, exc: BaseException | None = None, *, error_class: str | None = None,
            failure_code: str | None = None) -> None:
        return None

    def __enter__(self) -> NoopStep:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    async def __aenter__(self) -> NoopStep:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None


class NoopRun:
    """Stands in for ``Run``; retries still retry (the agent's behaviour must not change)."""

    __slots__ = ()
    run_id = None
    status = None

    def step(self, step_type: str, name: str | None = None, *, metadata: Mapping[str, Any] | None = None,
             retry_of: Any = None) -> NoopStep:
        return NOOP_STEP

    def begin_step(self, step_type: str, name: str | None = None, *, metadata: Mapping[str, Any] | None = None,
                   retry_of: Any = None, parent: Any = None) -> NoopStep:
        return NOOP_STEP

    def retrying(self, step_type: str, name: str | None = None, *, attempts: int = 3,
                 retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
                 backoff: float = 0.0, backoff_factor: float = 2.0,
                 metadata: Mapping[str, Any] | None = None) -> Retrying:
        return Retrying(self.step, step_type, name, attempts=attempts, retry_on=retry_on, backoff=backoff,
                        backoff_factor=backoff_factor, metadata=metadata)

    def set(self, **metadata: Any) -> NoopRun:
        return self

    def record_failure(self, failure_type: Any, failure_code: str, message: str | None = None,
                       step: Any = None) -> None:
        return None

    def mark_partial(self) -> None:
        return None

    def start(self, *, current: bool = True) -> NoopRun:
        return self

    def end(self, exc: BaseException | None = None) -> None:
        return None

    def __enter__(self) -> NoopRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    async def __aenter__(self) -> NoopRun:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None


NOOP_STEP = NoopStep()
NOOP_RUN = NoopRun()
