"""API keys and access control for both APIs, and per-key rate limiting on ingest.

Every ``/v1`` route of the Ingest API carries ``auth_dependency(settings, store, "ingest")`` and every
``/v1`` route of the Query API ``auth_dependency(settings, store, "read")``. The rules:

* Auth is *on* when ``AGENTTRACER_REQUIRE_AUTH=1`` or once any key has been created. Revoked keys
  still count: revoking the last key locks the APIs rather than quietly opening them again.
* A key arrives as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
* A presented key that is unknown or revoked is refused with 401 even when auth is off (a client
  that sends a key expects it to be checked); a valid key of the other scope gets 403.
* With auth on, a request without a key gets 401. With auth off, it is let through.

The key itself never appears in a response, a log line or an exception: lookups use its digest.
A presented key is looked up afresh on every request, so revoking a key takes effect on the very next
one. The one answer remembered is "no key exists at all" (while auth is not required), for
``AGENTTRACER_NO_KEY_CACHE_SECONDS`` (default 1 s): asking the database on every keyless request cost
the Ingest API a connection and a query per batch. The first key created therefore closes the APIs to
keyless requests within that time; 0 asks every time.

Rate limiting (``AGENTTRACER_RATE_LIMIT_PER_MINUTE``, 0 = off) is a token bucket per key — per client
address when no key is used — kept in this process's memory. Behind a load balancer with N ingest
processes the effective limit is N times the setting.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from agenttracer.server.settings import Settings
from agenttracer.store.interface import Reader, Store
from agenttracer.store.keys import KEY_PREFIXES, SCOPES, KeyStatus

# Longer than any key we issue, short enough that hashing junk costs nothing.
MAX_PRESENTED_KEY_LEN = 256
REALM = 'Bearer realm="agenttracer"'
RULE = "an API key of this API's scope in 'Authorization: Bearer <key>' or 'X-API-Key'"


@dataclass(frozen=True)
class Principal:
    """Who made the request: a key (by id, never by value), or nobody when auth is off.

    ``projects``: the projects the key is bound to (an ingest key's one project, a read key's set);
    None for an admin key and for a request without a key (auth off): every project.
    """

    key_id: str | None
    scope: str | None
    projects: frozenset[str] | None = None


ANONYMOUS = Principal(key_id=None, scope=None)


def _error(status: int, code: str, message: str, www_authenticate: str | None = None) -> HTTPException:
    """An answer in the shape of the APIs' other errors: a code, the field at fault, the rule, a sentence."""
    headers = {"WWW-Authenticate": www_authenticate} if www_authenticate else None
    detail = {"error": code, "field": "authorization", "rule": RULE, "message": message}
    return HTTPException(status_code=status, detail=detail, headers=headers)


def principal_of(request: Request) -> Principal:
    """The request's Principal, as the auth dependency left it (ANONYMOUS on a route without one)."""
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else ANONYMOUS


def presented_key(request: Request) -> str | None:
    """The key the client sent, from ``Authorization: Bearer`` or ``X-API-Key``; None when absent."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _error(
                401,
                "invalid_authorization_header",
                "the Authorization header must be 'Bearer <key>'",
                f'{REALM}, error="invalid_request"',
            )
        return value.strip()
    header = request.headers.get("x-api-key")
    if header is not None:
        return header.strip() or None
    return None


def auth_required(settings: Settings, store: Store) -> bool:
    """True when the APIs demand keys: ``AGENTTRACER_REQUIRE_AUTH=1`` or any key has been created."""
    if settings.require_auth:
        return True
    try:
        with store.reader() as reader:
            return reader.any_key_exists()
    except store.database_errors:
        # No database (or no schema) yet: no key can exist. Callers run migrations before serving.
        return False


class TokenBucketLimiter:
    """``per_minute`` requests per minute per identity, with bursts up to a minute's allowance.

    In-process only. Buckets idle for a minute are full again, so they are forgotten when the table
    grows past ``max_tracked``: memory stays bounded by the number of identities active in a minute.
    """

    def __init__(
        self, per_minute: int, *, clock: Callable[[], float] = time.monotonic, max_tracked: int = 10_000
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self._clock = clock
        self._max_tracked = max_tracked
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, last update)
        self._lock = threading.Lock()

    def acquire(self, identity: str) -> float:
        """Take one token: 0.0 when allowed, else the seconds until a token will be there."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(identity, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[identity] = (tokens - 1.0, now)
                self._forget_idle(now)
                return 0.0
            self._buckets[identity] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) <= self._max_tracked:
            return
        refill_time = self.capacity / self.rate
        for identity, (_, last) in list(self._buckets.items()):
            if now - last >= refill_time:
                del self._buckets[identity]


def auth_dependency(
    settings: Settings,
    store: Store,
    scope: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_rate_limited: Callable[[], object] | None = None,
    reader: Callable[[], AbstractContextManager[Reader]] | None = None,
) -> Callable[..., Any]:
    """A FastAPI dependency that admits a request to an API of ``scope`` ('ingest' or 'read').

    It returns the :class:`Principal` (also left on ``request.state.principal``),
    raises 401/403 (with ``WWW-Authenticate``) or, on ingest with a
    rate limit set, 429 with ``Retry-After`` (calling ``on_rate_limited`` first, for the metrics).
    It is a plain function, so FastAPI runs its one small query in the thread pool instead of on the
    event loop. ``reader`` (default ``store.reader``) gives the read session for that query: the Query
    API passes the session of the read job the check runs in (server/query/gate.py), so a request
    never holds one connection while it waits for another.
    """
    open_reader = reader if reader is not None else store.reader
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    limiter = (
        TokenBucketLimiter(settings.rate_limit_per_minute)
        if scope == "ingest" and settings.rate_limit_per_minute > 0
        else None
    )
    insufficient = f'{REALM}, error="insufficient_scope", scope="{scope}"'
    invalid = f'{REALM}, error="invalid_token"'
    # Until when "no key exists" may be believed without asking the database (clock() seconds).
    open_until = [-math.inf]

    def check(request: Request) -> Principal:
        key = presented_key(request)
        principal = _authenticate(key)
        # For the handlers, which decide the request's projects from it (server/ingest/project.py,
        # server/query/scope.py).
        request.state.principal = principal
        if limiter is not None:
            identity = principal.key_id or f"addr:{request.client.host if request.client else 'unknown'}"
            wait = limiter.acquire(identity)
            if wait > 0:
                if on_rate_limited is not None:
                    on_rate_limited()
                retry_after = max(1, math.ceil(wait))
                raise HTTPException(
                    status_code=429,
                    detail={
                        "error": "rate_limited",
                        "field": "authorization",
                        "rule": f"at most {settings.rate_limit_per_minute} ingest requests per minute per key",
                        "message": f"more than {settings.rate_limit_per_minute} requests per minute for this key",
                        "retry_after_s": retry_after,
                    },
                    headers={"Retry-After": str(retry_after)},
                )
        return principal

    def _authenticate(key: str | None) -> Principal:
        if key is None:
            if settings.require_auth:
                raise _error(401, "unauthorized", f"this API needs an API key of scope '{scope}'", REALM)
            if clock() < open_until[0]:
                return ANONYMOUS
            with open_reader() as session:
                if session.any_key_exists():
                    raise _error(401, "unauthorized", f"this API needs an API key of scope '{scope}'", REALM)
            if settings.no_key_cache_seconds > 0:
                open_until[0] = clock() + settings.no_key_cache_seconds
            return ANONYMOUS
        if len(key) > MAX_PRESENTED_KEY_LEN or not key.startswith(tuple(KEY_PREFIXES.values())):
            raise _error(401, "invalid_key", "the API key is not valid", invalid)
        with open_reader() as session:
            result = session.verify_key(key)
        if result.status is KeyStatus.REVOKED:
            raise _error(401, "revoked_key", "the API key has been revoked", invalid)
        if result.status is not KeyStatus.VALID or result.key is None:
            raise _error(401, "invalid_key", "the API key is not valid", invalid)
        if result.key.scope != scope:
            raise _error(
                403,
                "wrong_scope",
                f"this API needs a key of scope '{scope}'; the key presented has scope '{result.key.scope}'",
                insufficient,
            )
        bound = None if result.key.admin else frozenset(result.key.projects)
        return Principal(key_id=result.key.key_id, scope=result.key.scope, projects=bound)

    return check
