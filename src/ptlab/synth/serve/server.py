"""An OpenAI-compatible HTTP server (`/v1/chat/completions`, `/v1/completions`, `/v1/models`) on the stdlib.

Why the standard library: `http.server.ThreadingHTTPServer` with HTTP/1.1
keep-alive serves thousands of small requests per second, needs no new
dependency, and makes faults easy to inject at the byte level. One thread per
connection (up to `max_connections`; past it a 503); a `ModelResponder` batches
the model work across them.

Fit to be left running on a network: the API key is checked (in constant time)
before a byte of the body is read, on every route but ``GET /health``; bodies
have a size limit; idle connections are dropped after `idle_timeout_s`; every
field is validated before a request is queued (`validate.py`), and every
refusal is an OpenAI-style JSON error that names the field.

Extensions for tests and operators: ``GET /ptlab/stats`` returns what the
server received and injected (counts per outcome, and how many successful
replies each distinct request body got), ``GET /health`` answers ok.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
import time
from concurrent.futures import Future
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ptlab.synth.serve.auth import auth_header, authorize
from ptlab.synth.serve.body import body_length, decode_json
from ptlab.synth.serve.connections import BusyRejecter, linger_close
from ptlab.synth.serve.errors import ApiError, error_payload
from ptlab.synth.serve.faults import MALFORMED_BODIES, FaultInjector
from ptlab.synth.serve.replies import completion_body, usage
from ptlab.synth.serve.responders import submit_to
from ptlab.synth.serve.stats import ServerStats
from ptlab.synth.serve.stream import EventStream, stream_events
from ptlab.synth.serve.validate import Limits, Parsed, parse_request
from ptlab.synth.teachers.base import ChatRequest

COMPLETION_ROUTES = {"/v1/chat/completions": "chat", "/v1/completions": "text"}
STAT_OF_CODE = {"model_not_found": "unknown_model", "request_too_large": "too_large",
                "invalid_api_key": "unauthorized", "not_found": None}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client worker
    disable_nagle_algorithm = True  # else a small reply waits ~40 ms for a delayed ACK
    server: OpenAIServer
    linger = False  # set when closing with a request body unread: see connections.linger_close
    expects_continue = False  # the client sent "Expect: 100-continue" and waits before sending its body

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout_s  # the socket's timeout: an idle (or stalled) client is dropped
        super().setup()

    def finish(self) -> None:
        super().finish()
        if self.linger:
            linger_close(self.connection)

    def parse_request(self) -> bool:
        self.expects_continue = False
        return super().parse_request()

    def handle_expect_100(self) -> bool:
        """Defer "100 Continue" until the key and the declared length are accepted: else a client
        told to continue would send a body the server is about to refuse unread."""
        self.expects_continue = True
        return True

    def log_message(self, fmt, *args):  # quiet unless asked
        if self.server.verbose:
            super().log_message(fmt, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed request lines, oversized headers, unknown methods: a JSON error too, then close."""
        self.close_connection = self.linger = True
        if self.request_version == "HTTP/0.9":  # an unparsable request line: still answer with a status line
            self.request_version = self.protocol_version
        try:
            self._reply(code, error_payload(message or HTTPStatus(code).phrase, code=HTTPStatus(code).name.lower()))
        except OSError:
            pass

    def _reply(self, status: int, payload, headers: dict | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._headers_buffer.append(b"\r\n" + body)  # headers and body in one write
        self.flush_headers()

    def _fail(self, error: ApiError) -> None:
        if error.close:
            self.close_connection = self.linger = True
        self._reply(error.status, error.payload(), error.headers)

    def _declares_body(self) -> bool:
        return self.headers.get("Transfer-Encoding") is not None or self.headers.get("Content-Length", "0") != "0"

    def _authorize(self) -> None:
        authorize(self.headers, self.server.auth_header, self._declares_body())

    def _read_body(self) -> bytes:
        length = body_length(self.headers, self.server.max_body_bytes)
        if self.expects_continue:
            self.send_response_only(HTTPStatus.CONTINUE)
            self.end_headers()
        raw = self.rfile.read(length)
        if len(raw) < length:
            raise ApiError(400, "the request body is shorter than its Content-Length", code="incomplete_body",
                           close=True)
        return raw

    def _count_failure(self, error: ApiError, route_known: bool) -> None:
        stat = STAT_OF_CODE.get(error.code, "bad_request")
        if stat is not None and (route_known or stat == "unauthorized"):
            self.server.stats.add(stat)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if self._declares_body():  # a GET body is never read: the connection cannot be reused
            self.close_connection = self.linger = True
        if path == "/health":
            self._reply(200, {"status": "ok"})
            return
        try:
            self._authorize()
        except ApiError as e:
            self._count_failure(e, True)
            self._fail(e)
            return
        if path == "/v1/models":
            data = [{"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "ptlab"}]
            self._reply(200, {"object": "list", "data": data})
        elif path == "/ptlab/stats":
            self._reply(200, self.server.stats.as_dict())
        else:
            self._fail(ApiError(404, f"no route GET {path}", code="not_found"))

    def do_POST(self) -> None:
        srv = self.server
        path = urlsplit(self.path).path.rstrip("/")
        kind = COMPLETION_ROUTES.get(path)
        if kind is not None:
            srv.stats.add("received")
        try:
            self._authorize()
            if kind is None:
                raise ApiError(404, f"no route POST {path}", code="not_found", close=self._declares_body())
            raw = self._read_body()
            fault, variant = srv.faults.draw()
            if fault is not None:
                srv.stats.add(f"fault_{fault}")
            if fault is not None and fault != "late":  # a late reply is served (and counted "ok"), only late
                self._inject(fault, variant)
                return
            parsed = parse_request(kind, decode_json(raw), srv.model_name, srv.limits)
        except ApiError as e:
            self._count_failure(e, kind is not None)
            self._fail(e)
            return
        if srv.latency_s > 0:
            time.sleep(srv.latency_s)  # a slow server: every reply waits
        cid = srv.new_id("chatcmpl" if kind == "chat" else "cmpl")
        digest = hashlib.sha1(raw).hexdigest()
        if parsed.stream:
            self._stream(parsed, cid, digest)
        else:
            self._complete(parsed, cid, digest, late_s=srv.faults.delay_s if fault == "late" else 0.0)

    def _complete(self, parsed: Parsed, cid: str, digest: str, late_s: float = 0.0) -> None:
        srv = self.server
        futures = [srv.submit(r) for r in parsed.requests]
        try:
            done = [f.result() for f in futures]
        except Exception as e:  # noqa: BLE001 - the model failed on this request; say so, keep serving
            srv.stats.add("model_error")
            self._reply(500, error_payload(f"generation failed: {e}", "server_error", code="generation_failed"))
            return
        srv.stats.add("ok", digest)
        if late_s:
            time.sleep(late_s)  # served and counted, but the client may have given up by now
        self._reply(200, completion_body(parsed, cid, srv.model_name, done))

    def _stream(self, parsed: Parsed, cid: str, digest: str) -> None:
        """Server-sent events, each choice's text as it is generated (see stream.py), then ``data: [DONE]``."""
        srv = self.server
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        out = EventStream(self.wfile, parsed.kind, cid, srv.model_name)
        outcome = stream_events(out, parsed, srv.submit)
        if isinstance(outcome, BaseException):
            srv.stats.add("model_error")
            out.error(f"generation failed: {outcome}")
        else:
            srv.stats.add("ok", digest)
            if parsed.include_usage:
                out.usage(usage(parsed, outcome))
        out.done()
        if out.broken:
            self.close_connection = True

    def _inject(self, kind: str, variant: int) -> None:
        if kind == "500":
            self._reply(500, {"error": {"message": "injected internal error", "type": "server_error"}})
        elif kind == "429":
            self._fail(ApiError(429, "injected rate limit", code="rate_limit_exceeded", headers={"Retry-After": "0.05"}))
        elif kind == "malformed":
            self._reply(200, MALFORMED_BODIES[variant % len(MALFORMED_BODIES)])
        elif kind == "timeout":
            time.sleep(self.server.faults.delay_s)
            self.close_connection = True  # drop it without a reply


class OpenAIServer(ThreadingHTTPServer):
    """The server; `stop()` ends it. Limits: `max_body_bytes` (413 above), `idle_timeout_s` (an idle
    connection is closed), `max_connections` (503 beyond), `max_tokens_cap` and `max_n` (400 above)."""

    daemon_threads = True
    block_on_close = False  # `stop()` closes open connections rather than wait for idle clients
    request_queue_size = 1024

    def __init__(self, responder, model_name: str, host: str = "127.0.0.1", port: int = 0,
                 faults: FaultInjector | None = None, api_key: str | None = None, verbose: bool = False,
                 latency_s: float = 0.0, *, max_body_bytes: int = 1 << 20, idle_timeout_s: float = 30.0,
                 max_connections: int = 256, max_tokens_cap: int = 4096, max_n: int = 16):
        self.responder = responder
        self.model_name = model_name
        self.faults = faults or FaultInjector(0.0)
        self.api_key = api_key
        self.auth_header = auth_header(api_key)
        self.verbose = verbose
        self.latency_s = latency_s
        self.max_body_bytes = max_body_bytes
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.limits = Limits(max_tokens_cap=max_tokens_cap, max_n=max_n)
        self.stats = ServerStats()
        self.counter_lock = threading.Lock()
        self.next_id = 0
        self.connections: set[socket.socket] = set()
        self._busy = BusyRejecter()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def new_id(self, prefix: str) -> str:
        with self.counter_lock:
            self.next_id += 1
            return f"{prefix}-{self.next_id}"

    def submit(self, request: ChatRequest, on_text=None) -> Future:
        return submit_to(self.responder, request, on_text)

    def process_request(self, request, client_address) -> None:
        """A thread per connection up to `max_connections`; past it a 503 from the one busy thread."""
        with self.counter_lock:
            admitted = len(self.connections) < self.max_connections
            if admitted:
                self.connections.add(request)
        if not admitted:
            self.stats.add("busy")
            self._busy.reject(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request) -> None:
        with self.counter_lock:
            self.connections.discard(request)

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return  # the client gave up or went idle: normal under fault injection and timeouts
        super().handle_error(request, client_address)

    def server_close(self) -> None:
        super().server_close()
        self._busy.close()

    def start_background(self) -> OpenAIServer:
        """Serve from a daemon thread (tests, benchmarks); `stop()` to stop."""
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop accepting, then end every open connection (their threads see the close and exit)."""
        self.shutdown()
        self.server_close()
        with self.counter_lock:
            open_now = list(self.connections)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
