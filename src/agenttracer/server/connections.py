"""Slow and idle connections, closed below the apps: the HTTP protocol both APIs are served with.

uvicorn closes a keep-alive connection that stays idle after an answer (``timeout_keep_alive``), but a
connection that never finishes its request headers — one that sends nothing, or a header line every few
seconds — would stay open for good. ``GuardedH11Protocol`` adds the header timeout: from the moment a
connection opens, and again after each answer, the client has ``header_timeout_s`` to send a request's
complete headers, else the connection is closed (nothing was received that could be answered). While a
request is being served the timer is off; the body's own deadline belongs to the app that reads it
(``server/ingest/admission.py``).

``uvicorn_options(timeouts)`` gives the ``uvicorn.Config`` arguments that put both timeouts in place;
``server/runner.py`` uses them for every service.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ConnectionTimeouts:
    """``AGENTTRACER_HEADER_TIMEOUT_SECONDS`` and ``AGENTTRACER_IDLE_TIMEOUT_SECONDS`` (server/settings.py)."""

    header_s: float = 10.0
    idle_s: float = 5.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for a request's headers (see the module docstring)."""

    header_timeout_s = ConnectionTimeouts.header_s
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers arrived whole
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        in_flight = self.cycle is not None and not self.cycle.response_complete
        if in_flight or self.transport.is_closing():
            return
        # Cut off mid-headers, h11 has nothing to close politely: the socket is closed all the same.
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def uvicorn_options(timeouts: ConnectionTimeouts) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments for these timeouts."""
    protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": timeouts.header_s})
    return {"http": protocol, "timeout_keep_alive": timeouts.idle_s}
