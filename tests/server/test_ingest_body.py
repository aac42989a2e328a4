"""The body reader on its own: a gzip bomb is refused after inflating at most the cap, long before
the whole compressed stream has even been read; honest gzip (also multi-member) comes through whole."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from starlette.requests import Request

from agenttracer.model import MAX_BATCH_BYTES
from agenttracer.server.ingest.body import Problem, read_body
from tests.server.test_ingest_limits import gzip_bomb

CHUNK = 1024


def _request(body: bytes, consumed: list[int]) -> Request:
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]

    async def receive() -> dict[str, object]:
        index = len(consumed)
        consumed.append(index)
        return {"type": "http.request", "body": chunks[index], "more_body": index + 1 < len(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/ingest",
        "headers": [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")],
    }
    return Request(scope, receive)


def test_a_gzip_bomb_is_refused_without_reading_or_inflating_all_of_it() -> None:
    bomb = gzip_bomb(64 * 1024 * 1024)  # 64 MiB of zeros in ~64 KiB
    total_chunks = -(-len(bomb) // CHUNK)
    consumed: list[int] = []
    with pytest.raises(Problem) as info:
        asyncio.run(read_body(_request(bomb, consumed)))
    assert info.value.status == 413 and info.value.field == "body"
    # The cap is 5 MiB of 64: reading stopped after roughly 5/64 of the compressed stream.
    assert len(consumed) < total_chunks * (2 * MAX_BATCH_BYTES) / (64 * 1024 * 1024)


def test_gzip_bodies_inflate_completely_including_concatenated_members() -> None:
    payload = b'{"events": []}' * 1000
    body = gzip.compress(payload[:7000]) + gzip.compress(payload[7000:])
    assert asyncio.run(read_body(_request(body, []))) == payload
