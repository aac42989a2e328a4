"""Sending one batch and reading the answer: the HTTP side of delivery, used by the worker thread.

What is retried (429 / 502 / 503 / 504, timeouts, connection errors without limit until shutdown; 500 at
most ``MAX_SERVER_ERROR_RETRIES`` times), how long to wait (``Retry-After`` capped at 60 s, else
exponential backoff with jitter), how per-event results are counted, and how a
batch is serialised without holding the GIL for long. See ``agenttracer.server.ingest`` for the
server's side of the contract.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import random
import time
from collections import Counter
from typing import Any

import httpx

log = logging.getLogger("agenttracer")

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# A 500 is the server's fault, not the data's (the Ingest API rejects bad events one by one with a
# 200/422), so the batch is worth resending — but a server that fails the same way every time must not
# hold the batch forever: after this many retries it is dropped as ``http_500``.
SERVER_ERROR_STATUS = 500
MAX_SERVER_ERROR_RETRIES = 4
MAX_RETRY_AFTER = 60.0
BACKOFF_BASE = 0.5
GZIP_LEVEL = 5
# The worker shares the GIL with the agent. Left alone, CPython lets a busy thread keep the GIL for a
# whole switch interval (5 ms) before a waiting thread gets its turn. So the worker, while encoding and
# serialising, steps aside every few events with a real (50 µs) sleep; sleep(0) would not do: it retakes
# the GIL at once and, by counting as a switch, even postpones the forced hand-over the agent waits for.
YIELD_EVERY = 16
yield_gil = functools.partial(time.sleep, 0.00005)
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps_batch(events: list[dict[str, Any]]) -> bytes:
    """``{"events": [...]}`` as UTF-8 JSON, built in chunks with the GIL handed over between them."""
    parts = []
    for start in range(0, len(events), YIELD_EVERY * 4):
        parts.append(_encode_json(events[start:start + YIELD_EVERY * 4])[1:-1])
        yield_gil()
    return ('{"events":[' + ",".join(parts) + "]}").encode()


class Outcome:
    """What one HTTP attempt came to."""

    __slots__ = ("delivered", "dropped", "limited", "retry_after", "retryable")

    def __init__(self, delivered: int = 0, dropped: dict[str, int] | None = None, retryable: bool = False,
                 retry_after: float | None = None, limited: str | None = None) -> None:
        self.delivered = delivered
        self.dropped = dropped or {}
        self.retryable = retryable
        self.retry_after = retry_after
        # Set on a retryable outcome whose retries are bounded: the drop reason once they are spent.
        self.limited = limited


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), capped at 60 s."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def backoff_delay(attempt: int, max_backoff: float) -> float:
    """Seconds before retry number ``attempt + 1``: 0.5 s doubling up to ``max_backoff``, with jitter.

    "Equal jitter": a random point in the upper half of the window, so that many clients that failed
    together do not retry together, yet none retries much sooner than planned. The exponent is capped
    so that a backend that stays down for hours cannot overflow the arithmetic.
    """
    window = min(max_backoff, BACKOFF_BASE * 2.0 ** min(attempt, 32))
    return window * random.uniform(0.5, 1.0)


def read_results(response: httpx.Response, sent: int) -> Outcome:
    """Count a 2xx answer's per-event results; an answer without them means the whole batch was taken."""
    try:
        body = response.json()
    except ValueError:
        body = None
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != sent:
        return Outcome(delivered=sent)
    delivered = 0
    dropped: Counter[str] = Counter()
    for result in results:
        status = result.get("status") if isinstance(result, dict) else None
        if status == "rejected":
            dropped["rejected"] += 1
        else:
            delivered += 1
    return Outcome(delivered=delivered, dropped=dict(dropped))


def post_batch(client: httpx.Client, url: str, body: bytes, sent: int, timeout: float) -> Outcome:
    """Send one gzip body and say what became of its ``sent`` events (never raises)."""
    try:
        response = client.post(url, content=body,
                           timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)))
    except httpx.TimeoutException:
        return Outcome(retryable=True)
    except httpx.TransportError:  # refused, reset, closed mid-answer: the batch is safe to resend
        return Outcome(retryable=True)
    except httpx.HTTPError:
        return Outcome(dropped={"client_error": sent})
    status = response.status_code
    if 200 <= status < 300:
        return read_results(response, sent)
    if status in RETRYABLE_STATUS:
        return Outcome(retryable=True, retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if status == SERVER_ERROR_STATUS:
        return Outcome(retryable=True, retry_after=parse_retry_after(response.headers.get("Retry-After")),
                       limited=f"http_{status}")
    if status == 422:
        # Every event was rejected (per-event results say why); or the envelope itself was refused.
        outcome = read_results(response, sent)
        if outcome.dropped.get("rejected") == sent:
            return outcome
    if status in (401, 403):
        log.warning("agenttracer: the Ingest API refused the API key (HTTP %d); events are dropped", status)
    return Outcome(dropped={f"http_{status}": sent})
