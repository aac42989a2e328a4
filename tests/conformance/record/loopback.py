"""The recorder's two loopback servers: a receiver that keeps every export request exactly as it
arrived, and a fake OpenAI-compatible model that plays a scenario's script.

Both are plain ``http.server`` servers in daemon threads on 127.0.0.1 (no network, no framework
dependency), so the recorder runs wherever the frameworks it records are installed.

The fake model keeps one script position per URL prefix: a framework run is pointed at
``http://127.0.0.1:<port>/<key>/<scenario>/v1`` and every chat-completions call under that prefix takes
the scenario's next action (``tool``: call the agent's tool; ``answer``: a final text; ``rate_limit``:
an HTTP 429). Actions past the end of the script repeat its last one, so a framework that retries a
rate-limited call gets 429 again.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conformance.record.scenarios import CANARIES, COMPLETION_TOKENS, PROMPT_TOKENS, SCRIPTS


@dataclass
class Received:
    """Every request the receiver answered, in arrival order, bodies untouched (still compressed)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, content_type: str, encoding: str, body: bytes) -> None:
        with self.lock:
            self.requests.append({"path": path, "content_type": content_type, "content_encoding": encoding,
                                  "body_b64": base64.b64encode(body).decode("ascii")})

    def take(self) -> list[dict[str, Any]]:
        with self.lock:
            taken, self.requests = self.requests, []
        return taken


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, sent with a Content-Length or chunked (as Node's exporter does)."""
    if "chunked" not in (handler.headers.get("Transfer-Encoding") or "").lower():
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    parts = []
    while True:
        size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(handler.rfile.read(size))
        handler.rfile.readline()


def _receiver_handler(received: Received) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the recorder prints its own summary
            pass

        def do_POST(self) -> None:
            body = _read_body(self)
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            received.add(self.path, content_type, self.headers.get("Content-Encoding") or "", body)
            # An empty ExportTraceServiceResponse is zero protobuf bytes; JSON exporters want an object.
            answer = b"" if content_type == "application/x-protobuf" else b"{}"
            self.send_response(200)
            self.send_header("Content-Type", content_type or "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


@dataclass
class FakeModel:
    """Script positions per run prefix, and how many calls each prefix received."""

    calls: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_action(self, prefix: str, scenario: str) -> tuple[int, str]:
        with self.lock:
            n = self.calls.get(prefix, 0)
            self.calls[prefix] = n + 1
        script = SCRIPTS[scenario]
        return n, script[min(n, len(script) - 1)]


def _tool_call(request: dict[str, Any], n: int) -> dict[str, Any]:
    """Call the agent's tool (``lookup_order`` when offered, else the first tool) with a canary argument."""
    tools = [t.get("function", t) for t in request.get("tools") or []]
    tool = next((t for t in tools if t.get("name") == "lookup_order"), tools[0] if tools else {"name": "lookup_order"})
    params = list(((tool.get("parameters") or {}).get("properties") or {"order_id": {}}).keys()) or ["order_id"]
    arguments = {params[0]: CANARIES["tool_args"]}
    function = {"name": tool["name"], "arguments": json.dumps(arguments)}
    return {"id": f"call_{n}", "type": "function", "function": function}


def _final(request: dict[str, Any], n: int) -> tuple[str | None, list[dict[str, Any]] | None]:
    """The final answer: text, or a call of the framework's own ``final_answer`` tool where it has one."""
    tools = [t.get("function", t) for t in request.get("tools") or []]
    final = next((t for t in tools if t.get("name") == "final_answer"), None)
    if final is None:
        return CANARIES["output"], None
    params = list(((final.get("parameters") or {}).get("properties") or {"answer": {}}).keys()) or ["answer"]
    call = {"id": f"call_{n}", "type": "function",
            "function": {"name": "final_answer", "arguments": json.dumps({params[0]: CANARIES["output"]})}}
    return None, [call]


def _completion(request: dict[str, Any], n: int, action: str) -> dict[str, Any]:
    if action == "tool":
        content, calls = None, [_tool_call(request, n)]
    else:
        content, calls = _final(request, n)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
        "model": request.get("model") or "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop",
                     "logprobs": None}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                  "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
    }


def _chunks(completion: dict[str, Any], with_usage: bool) -> Iterator[dict[str, Any]]:
    """The same completion as chat.completion.chunk events (content or tool calls, then finish, usage)."""
    base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    choice = completion["choices"][0]
    message = choice["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": message["content"]}
    if message.get("tool_calls"):
        delta["tool_calls"] = [dict(call, index=i) for i, call in enumerate(message["tool_calls"])]
    yield base | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    yield base | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]}
    if with_usage:
        yield base | {"choices": [], "usage": completion["usage"]}


def _model_handler(model: FakeModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # model listings some clients ask for
            self._send(200, json.dumps({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}).encode(),
                       "application/json")

        def do_POST(self) -> None:
            raw = _read_body(self)
            parts = self.path.strip("/").split("/")
            # /<key>/<scenario>/v1/chat/completions
            if len(parts) < 4 or parts[-2:] != ["chat", "completions"]:
                self._send(404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}',
                           "application/json")
                return
            prefix, scenario = "/".join(parts[:2]), parts[1]
            request = json.loads(raw or b"{}")
            n, action = model.next_action(prefix, scenario)
            if action == "rate_limit":
                error = {"error": {"message": f"{CANARIES['exception']} rate limit reached for requests",
                                   "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
                self._send(429, json.dumps(error).encode(), "application/json",
                           {"retry-after-ms": "5", "retry-after": "0", "x-should-retry": "false"})
                return
            completion = _completion(request, n, action)
            if not request.get("stream"):
                self._send(200, json.dumps(completion).encode(), "application/json")
                return
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            body = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in _chunks(completion, usage))
            self._send(200, body + b"data: [DONE]\n\n", "text/event-stream")

    return Handler


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def receiver() -> Iterator[tuple[str, Received]]:
    """A loopback OTLP / Ingest API stand-in: answers 200 to every POST and keeps its body."""
    received = Received()
    with _serve(_receiver_handler(received)) as url:
        yield url, received


@contextmanager
def fake_openai() -> Iterator[tuple[str, FakeModel]]:
    """A loopback OpenAI-compatible chat-completions server playing the scenarios' scripts."""
    model = FakeModel()
    with _serve(_model_handler(model)) as url:
        yield url, model
