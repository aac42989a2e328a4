"""The Ingest API's admission (``server/ingest/admission.py``) over real HTTP on SQLite and PostgreSQL: a body
is read whole before a write slot is taken, a body that does not arrive in time is a 408, one client (key or
address) cannot hold every request or every slot (429 with Retry-After), and a batch that cannot get a slot
in time is a 503 — on ``/v1/ingest`` and ``/v1/traces`` alike, each in its own error shape."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import orjson
import sqlalchemy as sa

from agenttracer.server import ingest
from agenttracer.server.ingest.admission import Limits
from agenttracer.server.settings import Settings
from agenttracer.store.sql.keys import create_key
from agenttracer.store.sql.schema.engine import make_engine
from tests.support.db import WriteLock
from tests.support.events import full_run
from tests.support.servers import serve_app

JSON = {"content-type": "application/json"}


def _host_port(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


class Trickle:
    """A raw client that sends a request's headers (a Content-Length of ``length``) and then its body
    one byte at a time, every ``every_s`` seconds, from ``source`` — the slow uploader of the issue."""

    def __init__(self, base: str, path: str = "/v1/ingest", length: int = 100_000, source: str = "127.0.0.1",
                 content_type: str = "application/json", key: str | None = None) -> None:
        self.sock = socket.create_connection(_host_port(base), timeout=30, source_address=(source, 0))
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n{auth}"
                f"Content-Length: {length}\r\n\r\n{{")
        self.sock.sendall(head.encode())

    def answer(self, timeout: float = 10.0) -> bytes:
        """The raw answer: until its Content-Length is complete, the server closes, or ``timeout``."""
        self.sock.settimeout(timeout)
        raw = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                raw += data
                head, sep, body = raw.partition(b"\r\n\r\n")
                length = re.search(rb"content-length: *([0-9]+)", head.lower())
                if sep and length and len(body) >= int(length.group(1)):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return raw

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def served(app: object) -> Iterator[tuple[str, list[Trickle]]]:
    """``serve_app`` plus the trickling clients a test opens, closed before the server stops (a graceful stop
    waits for requests in flight)."""
    opened: list[Trickle] = []
    with serve_app(app) as base:
        try:
            yield base, opened
        finally:
            for t in opened:
                t.close()


def _post(base: str, source: str = "127.0.0.1", path: str = "/v1/ingest", **kw: object) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as client:
        return client.post(f"{base}{path}", json={"events": full_run()} if path == "/v1/ingest" else kw["doc"])


def test_a_trickling_body_holds_no_write_slot(live_settings: Settings) -> None:
    app = ingest.create_app(live_settings, limits=Limits(slots=1, busy_wait_s=0.5))
    with served(app) as (base, trickles):
        trickles += [Trickle(base, source="127.0.0.2") for _ in range(4)]
        time.sleep(0.2)  # the four are now reading their bodies
        started = time.monotonic()
        answer = _post(base)
        assert answer.status_code == 200 and answer.json()["accepted"] == 5, answer.text
        assert time.monotonic() - started < 0.5  # never waited for the one slot
        assert app.state.admission.refused["busy"] == 0


def test_a_body_that_does_not_arrive_in_time_is_a_408_and_the_connection_closes(live_settings: Settings) -> None:
    app = ingest.create_app(live_settings, limits=Limits(body_timeout_s=0.5))
    with served(app) as (base, trickles):
        trickles.append(Trickle(base))
        started = time.monotonic()
        raw = trickles[0].answer()
        assert time.monotonic() - started < 5
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower()
    error = orjson.loads(body)
    assert error["error"] == "request_timeout" and error["field"] == "body" and "0.5 s" in error["rule"]


def test_one_address_cannot_hold_every_request(live_settings: Settings) -> None:
    app = ingest.create_app(live_settings, limits=Limits(max_requests_per_client=3))
    with served(app) as (base, trickles):
        trickles += [Trickle(base, source="127.0.0.2") for _ in range(3)]
        time.sleep(0.2)
        refused = _post(base, source="127.0.0.2")
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) > 0
        body = refused.json()
        assert body["error"] == "too_many_requests" and body["field"] == "client" and "3" in body["rule"]
        # Another client is not affected, and neither is the OTLP route's answer shape.
        assert _post(base, source="127.0.0.3").status_code == 200
        assert httpx.post(f"{base}/v1/traces", content=b"{}", headers=JSON).status_code == 200
        trickles.append(Trickle(base, path="/v1/traces", source="127.0.0.2"))
        refused = trickles[-1].answer(5)
        assert refused.startswith(b"HTTP/1.1 429")
        status = orjson.loads(refused.partition(b"\r\n\r\n")[2])
        assert status["code"] == 8 and status["field"] == "client"  # google.rpc RESOURCE_EXHAUSTED


def test_one_key_cannot_hold_every_request_from_one_address(live_settings: Settings, db_url: str) -> None:
    """Behind one address (a NAT, a proxy) every key has its own share."""
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    (_, key_a), (_, key_b) = create_key(engine, "ingest"), create_key(engine, "ingest")
    engine.dispose()
    app = ingest.create_app(live_settings, limits=Limits(max_requests_per_client=2))
    with served(app) as (base, trickles):
        trickles += [Trickle(base, key=key_a) for _ in range(2)]
        time.sleep(0.3)
        batch = {"events": full_run()}
        refused = httpx.post(f"{base}/v1/ingest", json=batch, headers={"Authorization": f"Bearer {key_a}"})
        assert refused.status_code == 429 and refused.json()["field"] == "client", refused.text
        other = httpx.post(f"{base}/v1/ingest", json=batch, headers={"Authorization": f"Bearer {key_b}"})
        assert other.status_code == 200, other.text


def test_a_client_holds_at_most_half_the_slots_and_a_full_house_is_a_503(live_settings: Settings, db_url: str) -> None:
    app = ingest.create_app(live_settings, limits=Limits(slots=2, busy_wait_s=1.0))
    lock = WriteLock(db_url)
    answers: dict[str, httpx.Response] = {}
    try:
        with serve_app(app) as base:
            def send(name: str, source: str) -> threading.Thread:
                thread = threading.Thread(target=lambda: answers.__setitem__(name, _post(base, source=source)))
                thread.start()
                time.sleep(0.3)
                return thread

            # a0 takes client a's one slot (half of two) and a write slot, and waits for the database; a1 waits
            # behind its own client's batch, not in front of b, which takes the other write slot.
            threads = [send("a0", "127.0.0.2"), send("a1", "127.0.0.2"), send("b", "127.0.0.3")]
            answers["c"] = _post(base, source="127.0.0.4")  # both write slots held past busy_wait: 503
            lock.release()
            for t in threads:
                t.join(30)
    finally:
        lock.release()
    assert {name: answer.status_code for name, answer in answers.items()} == {"a0": 200, "a1": 503, "b": 200, "c": 503}
    for name in ("a1", "c"):
        assert answers[name].json()["error"] == "server_busy" and int(answers[name].headers["retry-after"]) > 0


def test_limits_come_from_the_settings(live_settings: Settings) -> None:
    limits = Limits.from_settings(replace(live_settings, max_requests_per_client=7, body_timeout_seconds=12))
    assert (limits.max_requests_per_client, limits.body_timeout_s, limits.client_slots) == (7, 12.0, 2)
