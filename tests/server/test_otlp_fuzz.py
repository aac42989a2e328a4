"""Property tests for /v1/traces: any bytes decode to a request or a 400, any request maps without
raising, nothing outside the allow-list reaches a mapped span, and the writer stores whatever the
mapper accepts (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from agenttracer.privacy.otel import EXCEPTION_EVENT_ATTRIBUTES, SPAN_ATTRIBUTES
from agenttracer.server.ingest.body import Problem
from agenttracer.server.ingest.otlp_decode import JSON, PROTOBUF, decode_request
from agenttracer.server.ingest.otlp_map import map_request
from agenttracer.store.sql.write.otlp_write import write_spans

CANARY = "xxcanaryxx"
NOW = datetime.now(timezone.utc)
NOW_NS = int(NOW.timestamp() * 1e9)

_plain = st.one_of(
    st.text(max_size=40).filter(lambda t: CANARY not in t),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.binary(max_size=8),
)
# The canary goes only where content goes: under keys that are not on the allow-list.
_content = st.one_of(st.text(max_size=40).map(lambda t: f"{CANARY} {t}"), _plain)
_content_keys = st.one_of(
    st.sampled_from(["gen_ai.input.messages", "input.value", "tag.tags", "exception.message", "metadata"]),
    st.text(max_size=20).filter(lambda k: k not in SPAN_ATTRIBUTES and k not in EXCEPTION_EVENT_ATTRIBUTES),
)


def _any(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    return AnyValue(string_value=value)


def _value(value: Any) -> AnyValue:
    if isinstance(value, list):
        return AnyValue(array_value={"values": [_any(x) for x in value]})
    return _any(value)


_pairs = st.one_of(
    st.tuples(st.sampled_from(sorted({**SPAN_ATTRIBUTES, **EXCEPTION_EVENT_ATTRIBUTES})),
              st.one_of(_plain, st.lists(_plain, max_size=4))),
    st.tuples(_content_keys, st.one_of(_content, st.lists(_content, max_size=4))),
)
_attributes = st.lists(_pairs, max_size=12).map(lambda pairs: [KeyValue(key=k, value=_value(v)) for k, v in pairs])
_times = st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.integers(NOW_NS - 10**12, NOW_NS))
_ids = st.sampled_from([b"\x01" * 16, b"\x02" * 16, b"\x00" * 16, b"", b"\x07" * 15])
_span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.sampled_from([b"", b"\x00" * 8, b"\x01" * 3]))


@st.composite
def _spans(draw: Any) -> Span:
    start = draw(_times)
    span = Span(
        trace_id=draw(_ids),
        span_id=draw(_span_ids),
        parent_span_id=draw(st.one_of(st.just(b""), _span_ids)),
        name=draw(st.one_of(st.text(max_size=30), st.just(f"{CANARY} said hello to everyone in the room"))),
        start_time_unix_nano=start,
        end_time_unix_nano=draw(st.one_of(st.just(start), _times)),
        status=Status(code=draw(st.sampled_from([0, 1, 2])), message=f"{CANARY} status"),
    )
    span.attributes.extend(draw(_attributes))
    event = span.events.add(name=draw(st.sampled_from(["exception", "gen_ai.user.message"])))
    event.attributes.extend(draw(_attributes))
    span.links.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8).attributes.extend(draw(_attributes))
    return span


@st.composite
def _requests(draw: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource = ResourceSpans()
    resource.resource.attributes.extend(draw(_attributes))
    scope = ScopeSpans()
    scope.spans.extend(draw(st.lists(_spans(), max_size=6)))
    resource.scope_spans.append(scope)
    request.resource_spans.append(resource)
    return request


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_a_400(body: bytes) -> None:
    for media in (PROTOBUF, JSON):
        try:
            request = decode_request(body, media)
        except Problem as problem:
            assert problem.status == 400
            continue
        map_request(request, NOW)


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "attributes", "key",
                             "value", "stringValue", "intValue", "startTimeUnixNano", "status", "code", "x"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_any_json_decodes_or_is_a_400(doc: Any) -> None:
    try:
        request = decode_request(json.dumps(doc).encode(), JSON)
    except Problem as problem:
        assert problem.status == 400
        return
    map_request(request, NOW)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_mapping_keeps_nothing_outside_the_allow_list(request: ExportTraceServiceRequest) -> None:
    # A round trip through the wire format, as the server sees it.
    mapped = map_request(decode_request(request.SerializeToString(), PROTOBUF), NOW)
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    assert len(mapped.spans) + len(mapped.rejected) == total
    for record in mapped.spans:
        assert CANARY not in repr(record)
        assert len(record.span_id) == 16 and len(record.run_id) == 36
        assert record.started_at <= record.ended_at


@pytest.mark.slow
def test_the_writer_stores_whatever_the_mapper_accepts(engine: sa.Engine) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(_requests(), min_size=1, max_size=3))
    def check(requests: list[ExportTraceServiceRequest]) -> None:
        for request in requests:
            mapped = map_request(request, NOW)
            written = write_spans(engine, mapped.spans, NOW)
            assert written.accepted + written.duplicates + written.rejected == len(mapped.spans)

    check()
