"""How the server side names an exception in a log line: its class, where it was raised, and for a
database error the driver's class and SQLSTATE — never its message, its arguments or a traceback.

A message or a traceback can quote what a client sent or what is stored (SQLAlchemy appends the bound
parameters of a failed statement; a driver quotes the offending value), so every log line that reports
an exception goes through ``describe_exception``. Standard library only.
"""

from __future__ import annotations

import os

__all__ = ["describe_exception"]


def describe_exception(exc: BaseException) -> str:
    """``ClassName at module.py:123`` for the innermost frame, plus ``(DriverError, sqlstate=…)`` for a
    wrapped database error: enough to find the fault, nothing of the data."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}" if tb is not None else ""
    text = f"{type(exc).__name__}{where}"
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        sqlstate = getattr(orig, "sqlstate", None)
        text += f" ({type(orig).__name__}" + (f", sqlstate={sqlstate})" if isinstance(sqlstate, str) else ")")
    return text
