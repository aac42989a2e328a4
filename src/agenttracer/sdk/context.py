"""Which run and which step are executing, per thread and per asyncio task (``contextvars``).

A new thread starts with no current run or step; an asyncio task inherits them from the code that
created it, so steps started in ``asyncio.gather`` children get the enclosing step as their parent.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

# Typed as Any to keep this module free of imports from tracer.py (which imports it).
RUN: ContextVar[Any] = ContextVar("agenttracer_current_run", default=None)
STEP: ContextVar[Any] = ContextVar("agenttracer_current_step", default=None)


def current_run() -> Any:
    """The ``Run`` whose block is executing in this thread / asyncio task, or None."""
    return RUN.get()


def current_step() -> Any:
    """The innermost ``Step`` whose block is executing in this thread / asyncio task, or None."""
    return STEP.get()
