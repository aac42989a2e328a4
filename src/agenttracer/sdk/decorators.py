"""``@traced("tool", "billing_api")``: record every call of a function as a step of the current run."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from agenttracer.sdk import context

F = TypeVar("F", bound=Callable[..., Any])


def traced(step_type: str, name: str | None = None, *,
           metadata: Mapping[str, Any] | None = None) -> Callable[[F], F]:
    """Decorate a sync or async function so that each call is a step of the run current at call time.

    Outside any run the function runs untouched. The step name defaults to the function's ``__name__``.
    Exceptions propagate unchanged (the step is recorded as an error step).
    """

    def decorate(fn: F) -> F:
        step_name = name or getattr(fn, "__name__", step_type)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = context.RUN.get()
                if run is None:
                    return await fn(*args, **kwargs)
                async with run.step(step_type, step_name, metadata=metadata):
                    return await fn(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = context.RUN.get()
            if run is None:
                return fn(*args, **kwargs)
            with run.step(step_type, step_name, metadata=metadata):
                return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
