"""An OpenAI-compatible HTTP server (`/v1/chat/completions`, `/v1/models`) on the stdlib.

Why the standard library: `http.server.ThreadingHTTPServer` with HTTP/1.1
keep-alive serves thousands of small requests per second, needs no new
dependency, and makes faults easy to inject at the byte level. One thread per
connection; a `ModelResponder` batches the model work across them.

Extensions for tests and operators: ``GET /ptlab/stats`` returns what the
server received and injected (counts per outcome, and how many successful
replies each distinct request body got), ``GET /health`` answers ok.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ptlab.synth.serve.faults import MALFORMED_BODIES, FaultInjector
from ptlab.synth.teachers.base import ChatRequest


@dataclass
class ServerStats:
    counts: Counter = field(default_factory=Counter)  # received, ok, fault_500, unauthorized, ...
    ok_by_body: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, body_hash: str | None = None) -> None:
        with self.lock:
            self.counts[name] += 1
            if body_hash is not None:
                self.ok_by_body[body_hash] += 1

    def as_dict(self) -> dict:
        with self.lock:
            return {"counts": dict(self.counts), "ok_by_body": dict(self.ok_by_body)}


class _BadRequest(Exception):
    pass


def parse_chat_request(body: dict) -> ChatRequest:
    """An OpenAI chat-completions body as a ChatRequest (text content parts are joined)."""
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise _BadRequest("'messages' must be a non-empty list")
    messages = []
    for m in msgs:
        if not isinstance(m, dict) or "role" not in m:
            raise _BadRequest("each message needs a 'role' and 'content'")
        content = m.get("content") or ""
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        messages.append((str(m["role"]), str(content)))
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    try:
        return ChatRequest(
            messages=tuple(messages),
            temperature=float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0),
            top_p=float(body.get("top_p") if body.get("top_p") is not None else 1.0),
            max_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 256),
            stop=stop,
            sample_index=int(body.get("seed") or 0),
        )
    except (TypeError, ValueError) as e:
        raise _BadRequest(f"bad sampling parameter: {e}") from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client worker
    disable_nagle_algorithm = True  # else a small reply waits ~40 ms for a delayed ACK
    server: OpenAIServer

    def log_message(self, fmt, *args):  # quiet unless asked
        if self.server.verbose:
            super().log_message(fmt, *args)

    def _send(self, status: int, payload, headers: dict | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._headers_buffer.append(b"\r\n" + body)  # headers and body in one write
        self.flush_headers()

    def _error(self, status: int, message: str, code: str, headers: dict | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}}, headers)

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/models":
            data = [{"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "ptlab"}]
            self._send(200, {"object": "list", "data": data})
        elif path == "/ptlab/stats":
            self._send(200, self.server.stats.as_dict())
        elif path == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"no route GET {path}", "not_found")

    def do_POST(self) -> None:
        srv = self.server
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0].rstrip("/")
        if path != "/v1/chat/completions":
            self._error(404, f"no route POST {path}", "not_found")
            return
        srv.stats.add("received")
        if srv.api_key is not None and self.headers.get("Authorization") != f"Bearer {srv.api_key}":
            srv.stats.add("unauthorized")
            self._error(401, "Incorrect API key provided.", "invalid_api_key")
            return
        kind, variant = srv.faults.draw()
        if kind is not None:
            srv.stats.add(f"fault_{kind}")
            self._inject(kind, variant)
            return
        try:
            body = json.loads(raw)
            if body.get("model") not in (None, srv.model_name):
                srv.stats.add("unknown_model")
                self._error(404, f"The model {body.get('model')!r} does not exist.", "model_not_found")
                return
            request = parse_chat_request(body)
        except (ValueError, AttributeError, _BadRequest) as e:
            srv.stats.add("bad_request")
            self._error(400, str(e), "bad_request")
            return
        if srv.latency_s > 0:
            time.sleep(srv.latency_s)  # a slow server: every reply waits
        try:
            done = srv.responder.complete(request)
        except Exception as e:  # noqa: BLE001 - the model failed on this request; say so, keep serving
            srv.stats.add("model_error")
            self._send(500, {"error": {"message": f"generation failed: {e}", "type": "server_error"}})
            return
        srv.stats.add("ok", hashlib.sha1(raw).hexdigest())
        with srv.counter_lock:
            srv.next_id += 1
            cid = f"chatcmpl-{srv.next_id}"
        usage = {
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens,
        }
        if body.get("stream"):
            self._stream(cid, done, usage, bool((body.get("stream_options") or {}).get("include_usage")))
            return
        message = {"role": "assistant", "content": done.text}
        self._send(
            200,
            {
                "id": cid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": srv.model_name,
                "choices": [{"index": 0, "message": message, "finish_reason": done.finish_reason}],
                "usage": usage,
            },
        )

    def _stream(self, cid: str, done, usage: dict, include_usage: bool) -> None:
        """`stream=true` for chat clients: server-sent events, the whole reply in one delta.

        The text is generated before the first event (no token-by-token streaming); the
        connection closes after `data: [DONE]`, which marks the end without chunked encoding.
        """
        base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": self.server.model_name}
        events = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": done.text},
                                  "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": done.finish_reason}]},
        ]
        if include_usage:
            events.append({**base, "choices": [], "usage": usage})
        payload = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload.encode())

    def _inject(self, kind: str, variant: int) -> None:
        if kind == "500":
            self._send(500, {"error": {"message": "injected internal error", "type": "server_error"}})
        elif kind == "429":
            self._error(429, "injected rate limit", "rate_limit_exceeded", {"Retry-After": "0.05"})
        elif kind == "malformed":
            self._send(200, MALFORMED_BODIES[variant % len(MALFORMED_BODIES)])
        elif kind == "timeout":
            time.sleep(self.server.faults.delay_s)
            self.close_connection = True  # drop it without a reply


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, responder, model_name: str, host: str = "127.0.0.1", port: int = 0,
                 faults: FaultInjector | None = None, api_key: str | None = None, verbose: bool = False,
                 latency_s: float = 0.0):
        super().__init__((host, port), _Handler)
        self.responder = responder
        self.model_name = model_name
        self.faults = faults or FaultInjector(0.0)
        self.api_key = api_key
        self.verbose = verbose
        self.latency_s = latency_s
        self.stats = ServerStats()
        self.counter_lock = threading.Lock()
        self.next_id = 0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def handle_error(self, request, client_address) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return  # the client gave up (its timeout): normal under fault injection
        super().handle_error(request, client_address)

    def start_background(self) -> OpenAIServer:
        """Serve from a daemon thread (tests, benchmarks); `shutdown()` + `server_close()` to stop."""
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
