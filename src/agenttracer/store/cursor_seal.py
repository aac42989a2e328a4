"""Sealed pagination cursors: a JSON payload plus an HMAC-SHA256 tag under the server's cursor secret.

A client gets cursors from us and must hand them back unchanged. Sealing makes that checkable: a
forged or edited cursor fails the tag check before any of its content is looked at, so no crafted
time, id or filter fingerprint ever reaches a query. The secret is the ``cursor_secret`` setting
(``AGENTTRACER_CURSOR_SECRET``); see docs/configuration.md for running several query processes.

Token form: ``base64url(payload JSON) "." base64url(first 16 bytes of the tag)``, unpadded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

__all__ = ["MAX_TOKEN_LEN", "SealError", "seal", "unseal"]

MAX_TOKEN_LEN = 512
_TAG_BYTES = 16


class SealError(ValueError):
    """The token is not one this server sealed (forged, edited, truncated, or sealed under another secret)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_TAG_BYTES]


def seal(key: bytes, payload: dict[str, Any]) -> str:
    """A token carrying ``payload`` (JSON-serialisable), tagged with ``key``."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(body)}.{_b64(_tag(key, body))}"


def unseal(key: bytes, token: str) -> dict[str, Any]:
    """The payload of a token from ``seal`` under the same key; SealError for anything else."""
    if len(token) > MAX_TOKEN_LEN or not token.isascii():
        raise SealError("too long or not ASCII")
    body_text, dot, tag_text = token.partition(".")
    if not dot:
        raise SealError("no tag")
    try:
        body = _unb64(body_text)
        tag = _unb64(tag_text)
    except (binascii.Error, ValueError):
        raise SealError("not base64url") from None
    if not hmac.compare_digest(tag, _tag(key, body)):
        raise SealError("tag mismatch")
    try:
        payload = json.loads(body)
    except ValueError:  # only reachable with the secret: still answered, never a 500
        raise SealError("not JSON") from None
    if not isinstance(payload, dict):
        raise SealError("not an object")
    return payload
