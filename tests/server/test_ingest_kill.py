"""Kill -9 of a live Ingest API mid-load: every acknowledged event is stored, and stored once.

A real ``agenttracer serve ingest`` subprocess on every store (SQLite, PostgreSQL, ClickHouse embedded)
takes batches from several
client threads. Mid-load it is killed with SIGKILL (no shutdown, no flush, a write possibly half
done), restarted on the same port, and the clients retry every batch that was not answered — as the
SDK does — until it is acknowledged. Then the database must hold every acknowledged event exactly
once: each run once, each (run_id, seq) step once, and each run's counters equal to its stored steps
(a replayed batch counted twice would break them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from agenttracer.store import open_store
from tests.support import events as ev
from tests.support.servers import free_port, serve_process
from tests.support.stored import step_copies, step_counts

pytestmark = [pytest.mark.slow]

CLIENTS = 4
STEPS_PER_RUN = 20
LOAD_S = 1.5  # of load before the kill, and again after the restart
STARTUP_S = 30.0
ACK_DEADLINE_S = 60.0  # a client gives up on one batch after this long (the test then fails)


@contextmanager
def ingest_server(db_url: str, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTTRACER_")}
    env.update(AGENTTRACER_DATABASE_URL=db_url, AGENTTRACER_LOG_LEVEL="warning")
    cmd = [sys.executable, "-m", "agenttracer", "serve", "ingest", "--port", str(port)]
    # Appended: the restarted server writes after the killed one.
    with serve_process(cmd, env, f"http://127.0.0.1:{port}/health", log, startup_s=STARTUP_S, append=True) as proc:
        yield proc


class Client(threading.Thread):
    """Sends one run per batch, retrying a batch until the server acknowledges it."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, stop
        self.acked: dict[str, set[int]] = {}  # run_id -> acknowledged step seqs
        self.unanswered = 0  # attempts that got no answer or a retryable status
        self.error: str | None = None

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.stop.is_set():
                rid = str(uuid.uuid4())
                batch = [ev.run_start(rid), *(ev.step(rid, s) for s in range(1, STEPS_PER_RUN + 1)), ev.run_end(rid)]
                try:
                    self.acked[rid] = self._deliver(http, batch)
                except AssertionError as exc:
                    self.error = str(exc)
                    return

    def _deliver(self, http: httpx.Client, batch: list[dict[str, object]]) -> set[int]:
        deadline = time.monotonic() + ACK_DEADLINE_S
        while True:
            try:
                r = http.post(f"{self.url}/v1/ingest", json={"events": batch})
            except httpx.TransportError:
                r = None
            if r is not None and r.status_code == 200:
                results = r.json()["results"]
                refused = [res for res in results if res["status"] not in ("accepted", "duplicate")]
                assert not refused, refused
                return {res["seq"] for res in results if res["type"] == "step"}
            # Only what the SDK retries may be retried here: no answer, or a "try again" status.
            assert r is None or r.status_code in (429, 502, 503, 504), (r.status_code, r.text[:300])
            self.unanswered += 1
            assert time.monotonic() < deadline, "a batch was never acknowledged"
            time.sleep(0.05)


def _wait_for_acks(clients: list[Client], more_than: int) -> None:
    # A slow machine may not have acknowledged anything within LOAD_S; wait (bounded) rather than flake.
    deadline = time.monotonic() + ACK_DEADLINE_S
    while sum(len(c.acked) for c in clients) <= more_than and time.monotonic() < deadline:
        time.sleep(0.05)


def test_every_acknowledged_event_survives_a_kill_9_exactly_once(store_url: str, tmp_path: Path) -> None:
    # On chdb the server process holds the directory; this process opens it only once both servers are gone.
    db_url = store_url
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "ingest.log"
    stop = threading.Event()
    clients = [Client(url, stop) for _ in range(CLIENTS)]
    with ingest_server(db_url, port, log) as first:
        for c in clients:
            c.start()
        time.sleep(LOAD_S)
        _wait_for_acks(clients, more_than=0)
        before_kill = sum(len(c.acked) for c in clients)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    # The clients keep trying while nothing listens; then a new server takes the same port.
    time.sleep(0.3)
    with ingest_server(db_url, port, log):
        time.sleep(LOAD_S)
        _wait_for_acks(clients, more_than=before_kill)
        stop.set()
        for c in clients:
            c.join(timeout=ACK_DEADLINE_S + 10)
    assert [c.error for c in clients] == [None] * CLIENTS
    assert not any(c.is_alive() for c in clients)
    assert before_kill > 0, "no batch was acknowledged before the kill"
    assert sum(c.unanswered for c in clients) > 0, "the kill interrupted no request: it did not happen mid-load"
    acked = {rid: seqs for c in clients for rid, seqs in c.acked.items()}
    assert len(acked) > before_kill, "no batch was acknowledged after the restart"

    store = open_store(db_url)
    try:
        stored_runs = step_counts(store)
        stored_steps = step_copies(store)
    finally:
        store.close()
    once: dict[str, set[int]] = {}
    for rid, seq, copies in stored_steps:
        assert copies == 1, (rid, seq, copies)
        once.setdefault(rid, set()).add(seq)
    for rid, seqs in acked.items():
        assert seqs == set(range(1, STEPS_PER_RUN + 1))
        assert once.get(rid) == seqs, f"run {rid}: acknowledged steps missing"
        assert stored_runs[rid] == STEPS_PER_RUN, f"run {rid}: step_count {stored_runs[rid]} after replays"
    # Every batch a client sent was retried until acknowledged, so the stored runs are exactly those.
    assert set(stored_runs) == set(acked)
