"""Reading an ingest request body safely: content type, size cap, streaming gzip, JSON parsing.

Everything here either returns bytes/objects within the limits or raises ``Problem`` carrying the
HTTP status and a JSON body that names the field and the rule. Nothing here echoes request content.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any, NoReturn

import orjson
from starlette.requests import ClientDisconnect, Request

from agenttracer.model import MAX_BATCH_BYTES
from agenttracer.server.errors import error_body

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

    def body(self) -> dict[str, Any]:
        return error_body(self.code, f"{self.field}: {self.rule}", field=self.field, rule=self.rule)


def _too_large(what: str = "body") -> NoReturn:
    raise Problem(413, "payload_too_large", what, f"must be at most {MAX_BATCH_BYTES} bytes after decompression")


JSON_MEDIA = ("application/json",)


def _media_allowed(media: str, accepted: tuple[str, ...]) -> bool:
    if media in accepted:
        return True
    # application/*+json is JSON wherever plain JSON is accepted.
    return "application/json" in accepted and media.startswith("application/") and media.endswith("+json")


def check_headers(request: Request, media_types: tuple[str, ...] = JSON_MEDIA) -> int | None:
    """Validate content type/encoding/length headers; return the zlib ``wbits`` to inflate the body
    with (gzip, or zlib/raw deflate), or None when it is not compressed."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not _media_allowed(media, media_types):
        raise Problem(415, "unsupported_media_type", "content-type", f"must be {' or '.join(media_types)}")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in _ENCODINGS:
        raise Problem(415, "unsupported_media_type", "content-encoding", "must be gzip, deflate or identity")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BATCH_BYTES:
        _too_large()
    return _ENCODINGS[encoding]


# Content-Encoding -> zlib wbits. ``deflate`` is the zlib format (RFC 9110); a raw deflate stream, which
# some clients send under that name, is recognised by its missing zlib header (see _inflater).
_DEFLATE = zlib.MAX_WBITS
_ENCODINGS: dict[str, int | None] = {"": None, "identity": None, "gzip": _GZIP_WBITS, "x-gzip": _GZIP_WBITS,
                                      "deflate": _DEFLATE}


def _inflater(wbits: int, first: bytes) -> Any:
    if wbits == _DEFLATE and len(first) == 2:
        zlib_header = first[0] & 0x0F == 8 and (first[0] * 256 + first[1]) % 31 == 0
        if not zlib_header:
            wbits = -zlib.MAX_WBITS  # raw deflate
    return zlib.decompressobj(wbits)


async def read_body(request: Request, media_types: tuple[str, ...] = JSON_MEDIA,
                    take: Callable[[int], None] | None = None) -> bytes:
    """The request body, decompressed if gzip or deflate, never more than MAX_BATCH_BYTES of it in memory.

    Decompression is incremental and bounded (``max_length``), so a compression bomb is refused after
    inflating at most the cap plus one byte, not all of it. ``take(n)``, when given, is told of every n
    bytes the body grows by as it arrives (and may raise ``Problem`` to refuse it: the server's budget of
    bytes held).
    """
    wbits = check_headers(request, media_types)
    out = bytearray()
    raw_total = 0
    inflater: Any = None
    what = "gzip" if wbits == _GZIP_WBITS else "deflate"
    stream = request.stream()
    try:
        async for chunk in stream:
            held = len(out)
            raw_total += len(chunk)
            if raw_total > MAX_BATCH_BYTES:
                _too_large()
            if wbits is None:
                out += chunk
                if take is not None:
                    take(len(chunk))
                continue
            if inflater is None:
                if not chunk:
                    continue
                inflater = _inflater(wbits, chunk[:2])
            data = chunk
            while data:
                try:
                    out += inflater.decompress(data, MAX_BATCH_BYTES - len(out) + 1)
                except zlib.error:
                    raise Problem(400, "invalid_body", "body", f"must be valid {what} data") from None
                if len(out) > MAX_BATCH_BYTES:
                    _too_large()
                data = inflater.unconsumed_tail
                if inflater.eof and inflater.unused_data:
                    if wbits != _GZIP_WBITS:
                        raise Problem(400, "invalid_body", "body", "must be one deflate stream (data after its end)")
                    # Concatenated gzip members are one valid stream: keep inflating.
                    data = inflater.unused_data
                    inflater = zlib.decompressobj(_GZIP_WBITS)
            if take is not None:
                take(len(out) - held)
    except ClientDisconnect:
        raise Problem(400, "invalid_body", "body", "the client disconnected before sending it all") from None
    if wbits is not None and (inflater is None or not inflater.eof):
        raise Problem(400, "invalid_body", "body", f"must be complete {what} data (the stream was truncated)")
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
