"""Retries as first-class steps: every attempt is its own step, linked to the attempt it retries.

::

    for attempt in run.retrying("tool", "billing_api", attempts=3, retry_on=TimeoutError):
        with attempt as step:
            invoice = billing.fetch(order_id)

Attempt 1 is an ordinary step; attempt *n* is a new step with ``attempt=n`` and ``retry_of_seq`` set to
the seq of attempt *n-1* — nothing is overwritten. When an attempt's block raises one of ``retry_on``
and attempts remain, the step is recorded as an error step, the exception is swallowed and the loop
goes on (after ``backoff * backoff_factor**(n-1)`` seconds, if a backoff is given). The last attempt's
exception, and any exception not in ``retry_on``, propagates unchanged. ``async for`` works the same
way (with ``async with attempt``), sleeping with ``asyncio.sleep``.

The same links can be made by hand with ``run.step(..., retry_of=previous_step)``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import TracebackType
from typing import Any


class Attempt:
    """The context manager for one attempt; ``with attempt as step`` gives the attempt's step."""

    __slots__ = ("_last", "_retry_on", "failed", "step")

    def __init__(self, step: Any, retry_on: tuple[type[BaseException], ...], last: bool) -> None:
        self.step = step
        self._retry_on = retry_on
        self._last = last
        self.failed: bool | None = None

    def __enter__(self) -> Any:
        return self.step.__enter__()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        self.step.__exit__(exc_type, exc, tb)
        self.failed = exc_type is not None
        # Swallowing the exception is what lets the loop try again; the error step is already recorded.
        return exc_type is not None and not self._last and issubclass(exc_type, self._retry_on)

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        return self.__exit__(exc_type, exc, tb)


class Retrying:
    """An iterable (sync or async) of ``Attempt`` objects; see the module docstring."""

    def __init__(self, make_step: Callable[..., Any], step_type: str, name: str | None, *, attempts: int,
                 retry_on: type[BaseException] | tuple[type[BaseException], ...], backoff: float,
                 backoff_factor: float, metadata: Mapping[str, Any] | None) -> None:
        if not isinstance(attempts, int) or attempts < 1:
            raise ValueError("attempts must be an integer of at least 1")
        if backoff < 0 or backoff_factor < 1:
            raise ValueError("backoff must be >= 0 and backoff_factor >= 1")
        self._make_step = make_step
        self._step_type = step_type
        self._name = name
        self._attempts = attempts
        self._retry_on = retry_on if isinstance(retry_on, tuple) else (retry_on,)
        self._backoff = backoff
        self._factor = backoff_factor
        self._metadata = metadata

    def _attempt(self, number: int, previous: Any) -> Attempt:
        step = self._make_step(self._step_type, self._name, metadata=self._metadata, retry_of=previous)
        return Attempt(step, self._retry_on, last=number == self._attempts)

    def _delay(self, number: int) -> float:
        return self._backoff * self._factor ** (number - 1)

    def __iter__(self) -> Iterator[Attempt]:
        previous = None
        for number in range(1, self._attempts + 1):
            attempt = self._attempt(number, previous)
            yield attempt
            if not attempt.failed:
                return
            previous = attempt.step
            if self._backoff and number < self._attempts:
                time.sleep(self._delay(number))

    async def __aiter__(self) -> AsyncIterator[Attempt]:
        previous = None
        for number in range(1, self._attempts + 1):
            attempt = self._attempt(number, previous)
            yield attempt
            if not attempt.failed:
                return
            previous = attempt.step
            if self._backoff and number < self._attempts:
                await asyncio.sleep(self._delay(number))
