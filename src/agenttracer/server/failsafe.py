"""The last line of defence of both APIs: an unexpected exception still gets a well-formed answer.

Starlette's ``ServerErrorMiddleware`` answers an unhandled exception with a 500 and then re-raises it
to the server; uvicorn, seeing the application raise, closes the keep-alive connection without
having said ``Connection: close``, so a client's next request on that pooled connection fails with a
connection reset. ``Failsafe`` sits inside the app (below the routing and exception handlers) and
turns such an exception into a complete JSON 500 that also says ``Connection: close``: the server
then closes the connection in an orderly way after the answer, and the client's pool knows not to
reuse it. Nothing is re-raised, so the server never sees an application crash.

Logs carry the exception's class and where it was raised (file and line), never its message or a
traceback: either can quote request content.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenttracer.diagnostics import describe_exception

__all__ = ["Failsafe", "describe_exception"]

log = logging.getLogger("agenttracer.server")


_BODY = orjson.dumps(
    {
        "error": "internal_error",
        "field": "server",
        "rule": "the server failed on this request (logged); nothing is wrong with the request that a retry cannot fix",
        "message": "server: internal error",
        "detail": "internal server error",
    }
)


class Failsafe:
    """ASGI middleware: an exception escaping the app becomes a JSON 500 with ``Connection: close``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("unhandled error on %s %s: %s", scope.get("method"), scope.get("path"), describe_exception(exc))
            if started:
                # Part of an answer is out: the only honest thing left is to end the connection.
                raise
            await send(_start_message())
            await send({"type": "http.response.body", "body": _BODY, "more_body": False})


def _start_message() -> dict[str, Any]:
    return {
        "type": "http.response.start",
        "status": 500,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_BODY)).encode()),
            (b"connection", b"close"),
        ],
    }
