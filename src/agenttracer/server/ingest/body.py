"""Reading an ingest request body safely: content type, size cap, streaming gzip, JSON parsing.

Everything here either returns bytes/objects within the limits or raises ``Problem`` carrying the
HTTP status and a JSON body that names the field and the rule. Nothing here echoes request content.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, NoReturn

import orjson
from starlette.requests import ClientDisconnect, Request

from agenttracer.model import MAX_BATCH_BYTES

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header + trailer
_JSON_RULE = "must be a JSON object encoded as UTF-8 (no NaN/Infinity, nesting at most 1024 levels)"


class Problem(Exception):
    """A whole-request error: status, code, and which field broke which rule."""

    def __init__(self, status: int, code: str, field: str, rule: str, headers: dict[str, str] | None = None):
        super().__init__(f"{field}: {rule}")
        self.status = status
        self.code = code
        self.field = field
        self.rule = rule
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.code, "field": self.field, "rule": self.rule, "message": f"{self.field}: {self.rule}"}


def _too_large(what: str = "body") -> NoReturn:
    raise Problem(413, "payload_too_large", what, f"must be at most {MAX_BATCH_BYTES} bytes after decompression")


def check_headers(request: Request) -> bool:
    """Validate content type/encoding/length headers; return True when the body is gzip-encoded."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise Problem(415, "unsupported_media_type", "content-type", "must be application/json")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise Problem(415, "unsupported_media_type", "content-encoding", "must be gzip or identity")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BATCH_BYTES:
        _too_large()
    return encoding in ("gzip", "x-gzip")


async def read_body(request: Request) -> bytes:
    """The request body, decompressed if gzip, never more than MAX_BATCH_BYTES of it in memory.

    Decompression is incremental and bounded (``max_length``), so a gzip bomb is refused after
    inflating at most the cap plus one byte, not all of it.
    """
    gzipped = check_headers(request)
    out = bytearray()
    raw_total = 0
    inflater = zlib.decompressobj(_GZIP_WBITS) if gzipped else None
    stream = request.stream()
    try:
        async for chunk in stream:
            raw_total += len(chunk)
            if raw_total > MAX_BATCH_BYTES:
                _too_large()
            if inflater is None:
                out += chunk
                continue
            data = chunk
            while data:
                try:
                    out += inflater.decompress(data, MAX_BATCH_BYTES - len(out) + 1)
                except zlib.error:
                    raise Problem(400, "invalid_body", "body", "must be valid gzip data") from None
                if len(out) > MAX_BATCH_BYTES:
                    _too_large()
                data = inflater.unconsumed_tail
                if inflater.eof and inflater.unused_data:
                    # Concatenated gzip members are one valid stream: keep inflating.
                    data = inflater.unused_data
                    inflater = zlib.decompressobj(_GZIP_WBITS)
    except ClientDisconnect:
        raise Problem(400, "invalid_body", "body", "the client disconnected before sending it all") from None
    if inflater is not None and not inflater.eof:
        raise Problem(400, "invalid_body", "body", "must be complete gzip data (the stream was truncated)")
    return bytes(out)


def _reject_constant(_name: str) -> NoReturn:
    raise ValueError("NaN and Infinity are not JSON")


def parse_json(body: bytes) -> Any:
    """Parse with orjson; fall back to the standard library only for what orjson refuses but JSON
    allows (lone surrogate escapes, integers beyond 64 bits), so that one odd event is rejected on its
    own instead of sinking its whole batch."""
    if not body.strip():
        raise Problem(400, "invalid_json", "body", _JSON_RULE)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise Problem(400, "invalid_json", "body", _JSON_RULE) from None
