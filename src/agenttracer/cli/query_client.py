"""A small HTTP client for the Query API, used by the CLI's read commands.

It turns every way a request can go wrong (server down, key refused, unknown run, bad filter) into a
``QueryError`` whose message tells the user what happened and what to try, never a traceback.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

DEFAULT_QUERY_URL = "http://localhost:8001"
TIMEOUT_S = 10.0

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class QueryError(Exception):
    """A request that failed in a way the user can act on; ``str()`` is the message to print."""


class NotFound(QueryError):
    pass


def parse_time(value: str | None, *, option: str, now: datetime | None = None) -> str | None:
    """ISO 8601 as given, or a relative age such as ``15m``, ``2h``, ``7d`` turned into a UTC time."""
    if value is None:
        return None
    match = _RELATIVE.match(value)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        moment = (now or datetime.now(timezone.utc)) - delta
        return moment.isoformat().replace("+00:00", "Z")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"{option}: expected an ISO 8601 time (2026-11-25T09:00:00Z) or an age like 15m, 2h, 7d"
        ) from None
    return value


class QueryClient:
    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self._has_key = bool(api_key)
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> QueryClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.get(path, params=clean)
        except httpx.TimeoutException:
            raise QueryError(f"the Query API at {self.url} did not answer within {TIMEOUT_S:.0f} s") from None
        except httpx.TransportError as exc:
            raise QueryError(
                f"cannot reach the Query API at {self.url} ({type(exc).__name__}); is `agenttracer up` running? "
                "Set --url or AGENTTRACER_QUERY_URL to point elsewhere."
            ) from None
        return self._check(response)

    def _check(self, response: httpx.Response) -> Any:
        status = response.status_code
        if status == 200:
            return response.json()
        detail = _detail(response)
        if status == 401 and self._has_key:
            raise QueryError(f"the API key was refused: {detail}")
        if status == 401:
            raise QueryError(f"the Query API needs an API key: pass --api-key or set AGENTTRACER_API_KEY ({detail})")
        if status == 403:
            raise QueryError(f"the API key was refused: use a key with the 'read' scope (at_read_…) ({detail})")
        if status == 404:
            raise NotFound(detail)
        if status == 409:
            raise QueryError(f"{detail}: give more of the id")
        if status == 422:
            raise QueryError(f"the Query API rejected the request: {detail}")
        raise QueryError(f"the Query API answered {status}: {detail}")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no details"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        parts = []
        for err in detail:
            loc = err.get("loc") if isinstance(err, dict) else None
            name = loc[-1] if isinstance(loc, list) and loc else "request"
            parts.append(f"{name}: {err.get('msg', 'invalid') if isinstance(err, dict) else err}")
        return "; ".join(parts)
    if isinstance(detail, dict) and "message" in detail:
        return str(detail["message"])
    return str(detail) if detail else (response.reason_phrase or "no details")
