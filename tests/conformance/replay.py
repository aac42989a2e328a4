"""Reading the corpus and replaying it: load recordings, cut them into the request sequences a test
sends, and read back what the Query API concluded.

Three ways to send one recording (``MODES``):

* ``as_recorded``: every request byte for byte as the exporter sent it, in the order it was sent;
* ``split``: one request per span (OTLP) or per event (/v1/ingest), in the recorded order;
* ``split_reversed``: the same single-span / single-event requests, last first.

The split modes re-encode the recording in its own format (protobuf or JSON) and give it fresh trace,
span and run ids (derived from the mode and a salt), so all three can be replayed into one database
and each still forms its own run.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from google.protobuf.json_format import MessageToDict, ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

RECORDINGS = Path(__file__).resolve().parent / "recordings"
MODES = ("as_recorded", "split", "split_reversed")


@dataclass(frozen=True)
class Request:
    path: str
    content_type: str
    content_encoding: str
    body: bytes

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.content_type}
        if self.content_encoding:
            headers["Content-Encoding"] = self.content_encoding
        return headers


@dataclass(frozen=True)
class Recording:
    framework: str
    scenario: str
    kind: str  # "otlp" or "ingest"
    canaries: tuple[str, ...]
    requests: tuple[Request, ...]

    @property
    def name(self) -> str:
        return f"{self.framework}/{self.scenario}"


def load(path: Path) -> Recording:
    data = json.loads(path.read_text())
    requests = tuple(Request(r["path"], r["content_type"], r["content_encoding"], base64.b64decode(r["body_b64"]))
                     for r in data["requests"])
    return Recording(data["framework"], data["scenario"], data["kind"], tuple(data["canaries"]), requests)


def recordings() -> list[Recording]:
    return [load(p) for p in sorted(RECORDINGS.glob("*/*.json"))]


def decoded(request: Request) -> bytes:
    """The body without its content encoding."""
    if request.content_encoding == "gzip":
        return gzip.decompress(request.body)
    if request.content_encoding == "deflate":
        return zlib.decompress(request.body)
    return request.body


def _salted(salt: str, raw: bytes, size: int) -> bytes:
    return hashlib.sha256(salt.encode() + raw).digest()[:size]


_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _recode_ids(value: Any, convert: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex, protobuf's JSON mapping as base64: convert ``value``'s."""
    if isinstance(value, dict):
        return {k: (convert(v) if k in _ID_KEYS and isinstance(v, str) and v else _recode_ids(v, convert))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_recode_ids(v, convert) for v in value]
    return value


def _hex_to_b64(text: str) -> str:
    return base64.b64encode(bytes.fromhex(text)).decode("ascii")


def _b64_to_hex(text: str) -> str:
    return base64.b64decode(text).hex()


def _spans(request: Request) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    if request.content_type == "application/json":
        ParseDict(_recode_ids(json.loads(decoded(request)), _hex_to_b64), message, ignore_unknown_fields=True)
    else:
        message.ParseFromString(decoded(request))
    return message


def otlp_spans(recording: Recording) -> list[Any]:
    """Every span of an OTLP recording, in the order the requests carried them."""
    return [span for request in recording.requests for rs in _spans(request).resource_spans
            for ss in rs.scope_spans for span in ss.spans]


def _split_otlp(recording: Recording, salt: str) -> Iterator[Request]:
    for request in recording.requests:
        for rs in _spans(request).resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    one = ExportTraceServiceRequest()
                    out_rs = one.resource_spans.add()
                    out_rs.resource.CopyFrom(rs.resource)
                    out_rs.schema_url = rs.schema_url
                    out_ss = out_rs.scope_spans.add()
                    out_ss.scope.CopyFrom(ss.scope)
                    copy = out_ss.spans.add()
                    copy.CopyFrom(span)
                    copy.trace_id = _salted(salt, span.trace_id, 16)
                    copy.span_id = _salted(salt, span.span_id, 8)
                    if span.parent_span_id:
                        copy.parent_span_id = _salted(salt, span.parent_span_id, 8)
                    for link in copy.links:
                        link.trace_id = _salted(salt, link.trace_id, 16)
                        link.span_id = _salted(salt, link.span_id, 8)
                    if request.content_type == "application/json":
                        body = json.dumps(_recode_ids(MessageToDict(one), _b64_to_hex)).encode()
                    else:
                        body = one.SerializeToString()
                    yield Request(request.path, request.content_type, "", body)


def _ingest_events(recording: Recording) -> list[dict[str, Any]]:
    return [event for request in recording.requests for event in json.loads(decoded(request))["events"]]


def _split_ingest(recording: Recording, salt: str) -> Iterator[Request]:
    for event in _ingest_events(recording):
        event = dict(event, run_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{salt}/{event['run_id']}")))
        yield Request("/v1/ingest", "application/json", "", json.dumps({"events": [event]}).encode())


def requests_for(recording: Recording, mode: str, salt: str) -> list[Request]:
    if mode == "as_recorded":
        return list(recording.requests)
    split = list((_split_otlp if recording.kind == "otlp" else _split_ingest)(recording, f"{salt}/{mode}"))
    return split[::-1] if mode == "split_reversed" else split


def run_ids(recording: Recording, mode: str, salt: str) -> set[str]:
    """The run ids the recording forms when replayed in ``mode``."""
    sent = requests_for(recording, mode, salt)
    if recording.kind == "otlp":
        ids = {span.trace_id for request in sent for rs in _spans(request).resource_spans
               for ss in rs.scope_spans for span in ss.spans}
        return {str(uuid.UUID(bytes=trace_id)) for trace_id in ids}
    return {event["run_id"] for request in sent for event in json.loads(decoded(request))["events"]}


def sweep_an_hour_later(db_url: str) -> int:
    """Run the abandoned-run sweep the ingest process runs, with its default timeout, as if that much time
    had passed since the replay: a run whose root never arrived (a crashed agent) is closed; settled runs
    are left alone. Returns how many runs it closed."""
    from agenttracer.store.sql.schema.engine import make_engine
    from agenttracer.store.sql.write.abandon import DEFAULT_TIMEOUT_S, sweep

    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        timeout = timedelta(seconds=DEFAULT_TIMEOUT_S)
        return len(sweep(engine, timeout, now=datetime.now(timezone.utc) + timeout + timedelta(seconds=1)).closed)
    finally:
        engine.dispose()


def post_all(client: httpx.Client, ingest_url: str, requests: list[Request]) -> list[httpx.Response]:
    answers = []
    for request in requests:
        response = client.post(f"{ingest_url}{request.path}", content=request.body, headers=request.headers())
        assert response.status_code == 200, (request.path, response.status_code, response.text)
        answers.append(response)
    return answers
