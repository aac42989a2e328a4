"""OTLP/HTTP trace requests and responses: the wire formats of ``POST /v1/traces``.

Decoding uses the ``opentelemetry-proto`` messages (protobuf through its C implementation, OTLP/JSON
through ``google.protobuf.json_format``), never a hand-written parser. OTLP/JSON differs from the
standard protobuf JSON mapping in one way that matters here: trace and span ids are hexadecimal, not
base64, so they are converted before parsing. An id that is not valid hexadecimal becomes empty, so
that its span is refused on its own (``partial_success``) instead of sinking the whole request.

Answers: ``ExportTraceServiceResponse`` (with ``partial_success`` when spans were refused) and, for a
refused request, ``google.rpc.Status``, each in the request's format. A JSON error also carries the
Ingest API's ``error``/``field``/``rule`` keys. Nothing here echoes request content.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agenttracer.server.ingest.body import Problem, parse_json

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, JSON)

_JSON_RULE = "must be an OTLP/JSON ExportTraceServiceRequest (resourceSpans, hex trace and span ids)"
_PROTOBUF_RULE = "must be a protobuf-encoded OTLP ExportTraceServiceRequest"
# HTTP status -> google.rpc.Code, as the OTLP/HTTP specification pairs them.
_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    408: code_pb2.DEADLINE_EXCEEDED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


def decode_request(body: bytes, media: str) -> ExportTraceServiceRequest:
    """The request message, or ``Problem(400)`` naming the format it failed."""
    if media == PROTOBUF:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception:  # DecodeError, and anything else the parser finds wrong with hostile bytes
            raise Problem(400, "invalid_body", "body", _PROTOBUF_RULE) from None
        return request
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise Problem(400, "invalid_json", "body", _JSON_RULE)
    try:
        _hex_ids_to_base64(doc)
        return json_format.ParseDict(doc, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except Exception:  # ParseError, and type errors from odd shapes inside the document
        raise Problem(400, "invalid_json", "body", _JSON_RULE) from None


def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    for resource_spans in _items(doc, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(scope_spans, "spans", "spans"):
                _convert_ids(span)
                for link in _items(span, "links", "links"):
                    _convert_ids(link)


def _items(parent: object, camel: str, snake: str) -> list[Any]:
    if not isinstance(parent, dict):
        return []
    value = parent.get(camel, parent.get(snake))
    return value if isinstance(value, list) else []


_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _convert_ids(obj: object) -> None:
    if not isinstance(obj, dict):
        return
    for name in _ID_FIELDS:
        value = obj.get(name)
        if isinstance(value, str):
            try:
                obj[name] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except (ValueError, binascii.Error):
                obj[name] = ""  # an invalid id: the span is refused on its own by the mapping


def encode_response(media: str, rejected: int, message: str) -> bytes:
    """An ``ExportTraceServiceResponse``; ``partial_success`` is set only when there is something to say."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if media == PROTOBUF:
        return response.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(response))


def encode_problem(media: str, problem: Problem) -> bytes:
    """A refused request's body: ``google.rpc.Status`` in the request's format (JSON also carries the
    Ingest API's error keys)."""
    code = _GRPC_CODES.get(problem.status, code_pb2.INVALID_ARGUMENT)
    message = f"{problem.field}: {problem.rule}"
    if media == PROTOBUF:
        return status_pb2.Status(code=code, message=message).SerializeToString()
    return orjson.dumps({"code": code, **problem.body()})


def response_media(content_type: str) -> str:
    """The format to answer in: the request's when it is one of ours, else JSON (the readable one)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media if media in MEDIA_TYPES else JSON
