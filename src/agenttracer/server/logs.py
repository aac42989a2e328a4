"""The servers' log lines: a readable text line or one JSON object per line, each with its request id.

``configure_logging(level, fmt)`` is called once per serving process (``agenttracer up|serve``).
``fmt`` is ``AGENTTRACER_LOG_FORMAT``: ``text`` (the default, ``time level logger: message``) or
``json`` (``{"time", "level", "logger", "event", ...}`` per line). While a request is being served,
every record carries its request id (``REQUEST_ID``, set by ``server/observe.py``), whichever thread
logs it: the thread pool copies the context.

The line each request ends with (``server/observe.py``) adds ``method``, ``route`` (the route
template), ``status``, ``duration_ms`` and, for a batch, ``counts``. Only these known fields are
ever added; the messages themselves are the project's own sentences, which never quote telemetry
content or a rejected value.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

import orjson

FORMATS = ("text", "json")
REQUEST_ID: ContextVar[str | None] = ContextVar("agenttracer_request_id", default=None)
# Record attributes a log call may add with ``extra=``, in the order they are written.
FIELDS = ("request_id", "method", "route", "status", "duration_ms", "counts")
_HANDLER_NAME = "agenttracer"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the request being served (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out = {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            out[name] = value
    return out


class TextFormatter(logging.Formatter):
    """Today's readable line, then the known fields as ``name=value`` (counts flattened)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = _fields(record)
        if not extra:
            return line
        counts = extra.pop("counts", None) or {}
        parts = [f"{name}={value}" for name, value in extra.items()]
        parts += [f"{name}={value}" for name, value in counts.items()]
        head, sep, tail = line.partition("\n")  # a traceback stays below the line
        return f"{head} {' '.join(parts)}{sep}{tail}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, event, the known fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"unknown log format {fmt!r}: use {' or '.join(FORMATS)}")


def configure_logging(level: int, fmt: str, stream: Any = None) -> logging.Handler:
    """Send every log record of this process to ``stream`` (stderr) in ``fmt``; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(RequestIdFilter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:  # ours from an earlier call; others (pytest's) stay
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
