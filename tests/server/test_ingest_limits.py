"""Bad input gets a clear 4xx naming the field and the rule — never a 500 — and stores nothing.

One live server per backend walks through a table of hostile bodies; each case states what the
client sent, the status it must get and the field the error must name.
"""

from __future__ import annotations

import gzip
import re
import zlib
from typing import Any

import httpx
import orjson

from agenttracer.model import MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from tests.support.db import sql_counts as counts
from tests.support.db import sql_rows as fetch
from tests.support.events import new_run_id, run_start, step, ts

JSON = {"content-type": "application/json"}
GZIP_JSON = {"content-type": "application/json", "content-encoding": "gzip"}


def _body(events: list[Any]) -> bytes:
    return orjson.dumps({"events": events})


def _raw_step(**replace: str) -> bytes:
    """A step serialised by hand, so that a field can hold text orjson would refuse to produce."""
    text = _body([step(new_run_id(), 1)]).decode()
    for key, raw in replace.items():
        text, n = re.subn(rf'"{key}":("(?:[^"\\]|\\.)*"|[^,}}]+)', lambda _m, k=key, r=raw: f'"{k}":{r}', text)
        assert n == 1, key
    return text.encode()


def _deep(levels: int) -> bytes:
    return b'{"events":[' + b"[" * levels + b"]" * levels + b"]}"


def gzip_bomb(inflated: int = 64 * 1024 * 1024) -> bytes:
    """A small gzip body that inflates to ``inflated`` bytes of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    parts = [packer.compress(chunk) for _ in range(inflated // len(chunk))]
    return b"".join([*parts, packer.flush()])


RID = new_run_id()
# (what it is, body, headers, expected status, field the error must name)
CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("wrong content type", _body([step(RID, 1)]), {"content-type": "text/plain"}, 415, "content-type"),
    ("no content type", _body([step(RID, 1)]), {"content-type": ""}, 415, "content-type"),
    ("unknown content encoding", _body([step(RID, 1)]), {**JSON, "content-encoding": "br"}, 415, "content-encoding"),
    ("garbage bytes", b"\xff\xfe\x00\x81garbage", JSON, 400, "body"),
    ("empty body", b"", JSON, 400, "body"),
    ("NaN literal", _raw_step(latency_ms="NaN"), JSON, 400, "body"),
    ("Infinity literal", _raw_step(latency_ms="Infinity"), JSON, 400, "body"),
    ("nesting 100k deep", _deep(100_000), JSON, 400, "body"),
    ("not gzip though declared", _body([step(RID, 1)]), GZIP_JSON, 400, "body"),
    ("truncated gzip", gzip.compress(_body([step(RID, 1)]))[:-12], GZIP_JSON, 400, "body"),
    ("a JSON array, not an object", b"[1, 2, 3]", JSON, 422, "body"),
    ("no events list", b'{"event": []}', JSON, 422, "events"),
    ("events is not a list", b'{"events": {"type": "step"}}', JSON, 422, "events"),
    ("empty events list", b'{"events": []}', JSON, 422, "events"),
    ("too many events", _body([step(RID, 1)] * (MAX_BATCH_EVENTS + 1)), JSON, 413, "events"),
    ("over 5 MiB", b'{"events": [], "pad": "' + b"x" * MAX_BATCH_BYTES + b'"}', JSON, 413, "body"),
    ("gzip bomb", gzip_bomb(), GZIP_JSON, 413, "body"),
    # Per-event problems: the batch is answered with per-event results, 422 because none was stored.
    ("NUL in a name", _raw_step(name='"bad\\u0000name"'), JSON, 422, "name"),
    ("lone surrogate in a name", _raw_step(name='"bad\\ud800name"'), JSON, 422, "name"),
    ("control character in agent_id", _body([run_start(RID, agent_id="a\x07b")]), JSON, 422, "agent_id"),
    ("seq of 2^63", _raw_step(seq=str(2**63)), JSON, 422, "seq"),
    ("seq of 2^64 + 1", _raw_step(seq=str(2**64 + 1)), JSON, 422, "seq"),
    ("seq of 10^400", _raw_step(seq="1" + "0" * 400), JSON, 422, "seq"),
    ("seq of 0", _raw_step(seq="0"), JSON, 422, "seq"),
    ("seq as a string", _raw_step(seq='"1"'), JSON, 422, "seq"),
    ("latency 1e999 (overflows to infinity)", _raw_step(latency_ms="1e999"), JSON, 422, "latency_ms"),
    ("negative latency", _body([step(RID, 1, latency_ms=-0.5)]), JSON, 422, "latency_ms"),
    ("end before start", _body([step(RID, 1, started_at=ts(5), ended_at=ts(4))]), JSON, 422, "ended_at"),
    ("timestamp without timezone", _body([step(RID, 1, started_at="2026-11-25T09:00:00")]), JSON, 422, "started_at"),
    ("timestamp as a number", _body([step(RID, 1, started_at=1764061200)]), JSON, 422, "started_at"),
    ("timestamp beyond year 9999", _body([run_start(RID, started_at="9999-12-31T23:59:59-05:00")]), JSON, 422,
     "started_at"),
    ("run_id not a UUID", _body([step("run-1", 1)]), JSON, 422, "run_id"),
    ("unknown step type", _body([step(RID, 1, step_type="daydream")]), JSON, 422, "step_type"),
    ("bad failure code", _body([step(RID, 1, failure_code="Not A Code!")]), JSON, 422, "failure_code"),
    ("unknown status", _body([step(RID, 1, status="fine")]), JSON, 422, "status"),
    ("attempt of zero", _body([step(RID, 1, attempt=0)]), JSON, 422, "attempt"),
    ("retry of a later step", _body([step(RID, 2, retry_of_seq=5)]), JSON, 422, "retry_of_seq"),
    ("agent_id too long", _body([run_start(RID, agent_id="a" * 129)]), JSON, 422, "agent_id"),
]


def _error_fields(body: dict[str, Any]) -> list[str]:
    if "results" in body:
        return [e["field"] for r in body["results"] for e in r["errors"]]
    return [body["field"]]


def test_every_bad_input_gets_a_clear_4xx_and_stores_nothing(live_ingest: str, db_url: str) -> None:
    with httpx.Client(base_url=live_ingest, timeout=60) as client:
        for what, body, headers, status, field in CASES:
            resp = client.post("/v1/ingest", content=body, headers=headers)
            assert resp.status_code == status, f"{what}: got {resp.status_code} {resp.text[:300]}"
            assert resp.headers["content-type"].startswith("application/json"), what
            payload = resp.json()
            assert field in _error_fields(payload), f"{what}: {payload}"
            if "results" not in payload:
                assert payload["rule"] and payload["message"].startswith(f"{field}: "), what
        assert client.get("/health").status_code == 200
    assert counts(db_url) == {"runs": 0, "steps": 0, "failures": 0}


def test_errors_never_echo_the_rejected_value(live_ingest: str) -> None:
    rid = new_run_id()
    marker = "zq-secret-marker"
    events = [step(rid, 1, step_type=marker), run_start(rid, agent_id=marker * 20), step(rid, 2, status=marker)]
    resp = httpx.post(f"{live_ingest}/v1/ingest", json={"events": events}, timeout=30)
    assert resp.status_code == 422
    assert marker not in resp.text


def test_gzip_bodies_are_accepted(live_ingest: str, db_url: str) -> None:
    rid = new_run_id()
    body = gzip.compress(_body([run_start(rid), step(rid, 1), step(rid, 2)]))
    resp = httpx.post(f"{live_ingest}/v1/ingest", content=body, headers=GZIP_JSON, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 3
    assert counts(db_url)["steps"] == 2


def test_a_full_batch_at_the_limits_is_accepted(live_ingest: str, db_url: str) -> None:
    rid = new_run_id()
    events = [run_start(rid), *(step(rid, i) for i in range(1, MAX_BATCH_EVENTS))]
    resp = httpx.post(f"{live_ingest}/v1/ingest", json={"events": events}, timeout=60)
    assert resp.status_code == 200
    assert resp.json()["accepted"] == MAX_BATCH_EVENTS
    assert fetch(db_url, "SELECT step_count FROM runs")[0]["step_count"] == MAX_BATCH_EVENTS - 1


def test_hostile_metadata_is_removed_and_the_event_kept(live_ingest: str, db_url: str) -> None:
    rid = new_run_id()
    text = _body([step(rid, 1, metadata={"ok_key": 1, "k2": "PLACEHOLDER", "nested": {"a": {"b": [1]}}})]).decode()
    # A NUL and a lone surrogate in values, and a key with a surrogate: none may reach the database.
    text = text.replace('"PLACEHOLDER"', '"a\\u0000b","k3":"x\\udc80y","bad\\ud800key":1')
    resp = httpx.post(f"{live_ingest}/v1/ingest", content=text.encode(), headers=JSON, timeout=30)
    assert resp.status_code == 200, resp.text
    result = resp.json()["results"][0]
    assert result["status"] == "accepted"
    # An invalid key is reported by position ("[key 4]"), never echoed (privacy policy).
    assert {r["key"].split(".")[1][:3] for r in result["removed"]} == {"k2", "k3", "nes", "[ke"}
    stored = fetch(db_url, "SELECT meta, meta_removed FROM steps")[0]
    assert stored["meta_removed"] == 4
    assert "ok_key" in str(stored["meta"]) and "k2" not in str(stored["meta"])
