"""What every framework integration shares: bounded maps, guarded callbacks, counters, failure types.

The promises they keep are the SDK's: a callback never raises into the agent (its body is guarded,
and an exception inside it is counted and logged once by class name, never by message), never does
I/O (everything goes through the SDK's queue), and holds bounded memory (open framework ids live in a
``BoundedMap`` that evicts its oldest entry, counted, when full).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from agenttracer.model import FailureType, StepType

log = logging.getLogger("agenttracer")

K = TypeVar("K")
V = TypeVar("V")
F = TypeVar("F", bound=Callable[..., Any])

# The failure layer an error step belongs to, by the step's type.
FAILURE_TYPE_BY_STEP: dict[str, str] = {
    StepType.TOOL.value: FailureType.TOOL.value,
    StepType.LLM.value: FailureType.MODEL.value,
    StepType.RETRIEVAL.value: FailureType.RETRIEVAL.value,
}


def failure_type_for(step_type: str) -> str:
    """``tool``/``model``/``retrieval`` for those steps, ``orchestration`` for everything else."""
    return FAILURE_TYPE_BY_STEP.get(step_type, FailureType.ORCHESTRATION.value)


class BoundedMap(OrderedDict[K, V], Generic[K, V]):
    """An insertion-ordered dict of at most ``limit`` entries; ``put`` returns what it evicted."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        if not isinstance(limit, int) or limit < 1:
            raise ValueError("the limit must be a positive integer")
        self.limit = limit

    def put(self, key: K, value: V) -> V | None:
        """Insert (or replace) ``key``; when that makes the map too big, evict and return the oldest value."""
        self[key] = value
        if len(self) > self.limit:
            return self.popitem(last=False)[1]
        return None


class Guard:
    """Counts what an integration had to give up on, and makes callbacks that can never raise.

    ``counts`` holds reasons only (``callback_error:on_tool_end``, ``evicted``…), never values.
    """

    def __init__(self, integration: str) -> None:
        self.integration = integration
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self._warned: set[str] = set()

    def count(self, reason: str) -> None:
        self.counts[reason] += 1

    def failed(self, where: str, exc: BaseException) -> None:
        self.counts[f"callback_error:{where}"] += 1
        if where not in self._warned:
            self._warned.add(where)
            # The class name only: an exception's message may hold the content we promise not to keep.
            log.warning("agenttracer: the %s integration skipped a %s callback (%s); counted in stats()",
                        self.integration, where, type(exc).__name__)


def guarded(method: F) -> F:
    """Run a callback method under its object's ``_guard`` lock; an exception is counted, never raised."""
    where = method.__name__

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        guard: Guard = self._guard
        try:
            with guard.lock:
                return method(self, *args, **kwargs)
        except Exception as exc:
            guard.failed(where, exc)
            return None

    # Name and docstring only: no ``__wrapped__``, which frameworks' coroutine checks (``inspect.unwrap``)
    # would follow on every callback.
    wrapper.__name__ = wrapper.__qualname__ = where
    wrapper.__doc__ = method.__doc__
    return wrapper  # type: ignore[return-value]


def missing_framework(extra: str, package: str) -> ImportError:
    return ImportError(f"this integration needs {package}: pip install 'agenttracer[{extra}]'")
