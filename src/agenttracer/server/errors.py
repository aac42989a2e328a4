"""One error shape for both APIs, and one health / database-unavailable answer for both apps.

Every error answer of the Ingest API and of the Query API is one JSON object::

    {"error": "<code>", "field": "<name>" | null, "rule": "<text>" | null, "message": "<sentence>",
     "detail": "<sentence>" | [{"loc", "msg", "type"}, ...]}

* ``error`` — a machine-readable code (``payload_too_large``, ``invalid_parameters``, ``not_found``,
  ``unauthorized``, ``database_unavailable``…); ``field`` and ``rule`` — which input broke which rule,
  when the error is about one; ``message`` — a sentence for people. These are what ingest clients read.
* ``detail`` — what FastAPI-style clients read (the dashboard, the CLI): the message, or on a 422 the
  list naming each bad parameter and its rule.

No value a client sent is ever echoed, and a database error is named by its class only (a driver's
message can quote parameters, host names or credentials). ``docs/api-sequences.md`` documents the shape.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

RETRY_AFTER_SECONDS = 2

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_parameters", 429: "rate_limited",
          503: "unavailable"}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_body(code: str, message: str, *, field: str | None = None, rule: str | None = None,
               detail: Any = None, **extra: Any) -> dict[str, Any]:
    """The one error shape (``extra``: documented additions such as ``retry_after_s``)."""
    return {"error": code, "field": field, "rule": rule, "message": message,
            "detail": message if detail is None else detail, **extra}


def error_response(status: int, code: str, message: str, *, field: str | None = None, rule: str | None = None,
                   detail: Any = None, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return json_response(status, error_body(code, message, field=field, rule=rule, detail=detail, **extra), headers)


def retry_later(status: int, code: str, message: str, *, field: str, rule: str) -> Response:
    """A 503 the client should retry after ``Retry-After``: nothing was done."""
    return error_response(status, code, message, field=field, rule=rule,
                          headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def database_unavailable(service: str, exc: BaseException, message: str | None = None,
                         rule: str = "must be reachable; nothing was done, retry after Retry-After") -> Response:
    """The 503 both apps answer when the database is unreachable (or, with ``message``, too slow); logged on
    the service's logger (``agenttracer.ingest`` / ``agenttracer.query``)."""
    orig = getattr(exc, "orig", None)
    logging.getLogger(f"agenttracer.{service}").warning(
        "database unavailable (%s, sqlstate=%s)", type(orig or exc).__name__, getattr(orig, "sqlstate", None)
    )
    return retry_later(
        503, "database_unavailable",
        message or f"the database is unavailable ({type(exc).__name__}); nothing was done, retry shortly",
        field="database", rule=rule,
    )


def health_response(service: str, backend: str, database: str = "ok", detail: str | None = None) -> Response:
    """``GET /health`` of both apps: 200 when ``database`` is ``ok``, else 503 with ``Retry-After``."""
    ok = database == "ok"
    body = {"status": "ok" if ok else "unavailable", "service": service, "database": database, "backend": backend,
            "detail": detail}
    if ok:
        return json_response(200, body)
    logging.getLogger(f"agenttracer.{service}").warning("health: database %s (%s)", database, detail)
    return json_response(503, body, {"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _http_exception(_request: Request, exc: Exception) -> Response:
    """HTTPExceptions (auth, 404 of unknown routes, 405…) in the one shape. The auth dependency raises them
    with a dict detail holding error/field/rule/message; anything else gets a code from its status."""
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    headers = dict(exc.headers) if exc.headers else None
    if isinstance(detail, dict) and "error" in detail:
        fields = dict(detail)
        code, message = str(fields.pop("error")), str(fields.pop("message", ""))
        field, rule = fields.pop("field", None), fields.pop("rule", None)
        return error_response(exc.status_code, code, message, field=field, rule=rule, headers=headers, **fields)
    code = _CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(detail), headers=headers)


def install(app: FastAPI) -> None:
    """The handlers that give both apps' HTTP errors the one shape."""
    app.add_exception_handler(HTTPException, _http_exception)
