"""Slow and idle connections are closed below the apps (``server/connections.py``): a connection that sends
no request, or trickles its headers, is closed after the header timeout; one left idle after an answer is
closed after the idle timeout; a request served meanwhile is not cut off."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from agenttracer.server.connections import ConnectionTimeouts
from agenttracer.server.settings import Settings
from agenttracer.server.ui import create_app as create_ui
from tests.support.servers import serve_app

TIMEOUTS = ConnectionTimeouts(header_s=0.5, idle_s=0.3)


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _closed_after(sock: socket.socket, limit_s: float = 5.0) -> float:
    """Seconds until the server closes ``sock`` (reading and discarding whatever it sends)."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    while sock.recv(65536):
        pass
    return time.monotonic() - started


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    raw = b""
    while True:
        raw += sock.recv(65536)
        head, sep, body = raw.partition(b"\r\n\r\n")
        length = re.search(rb"content-length: *([0-9]+)", head.lower())
        if sep and length and len(body) >= int(length.group(1)):
            return raw


@pytest.fixture
def base() -> Iterator[str]:
    with serve_app(create_ui(Settings()), timeouts=TIMEOUTS) as url:
        yield url


def test_a_silent_connection_is_closed_after_the_header_timeout(base: str) -> None:
    sock = _connect(base)
    assert 0.3 < _closed_after(sock) < 2.0
    sock.close()


def test_headers_trickled_a_byte_at_a_time_are_cut_off(base: str) -> None:
    sock = _connect(base)
    started = time.monotonic()
    closed = False
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        sock.settimeout(0.1)
        try:
            if sock.recv(1) == b"":
                closed = True
                break
        except TimeoutError:
            pass
    assert closed and time.monotonic() - started < 2.0
    sock.close()


def test_an_answered_connection_left_idle_is_closed_and_a_busy_one_is_not(base: str) -> None:
    sock = _connect(base)
    for _ in range(3):  # requests a little slower than the idle timeout apart would be cut: these are not
        sock.sendall(b"GET /config.json HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(0.1)
    assert _closed_after(sock) < 1.5
    sock.close()
