"""`ptlab serve` on a network: auth before the body, body limits, idle timeout, connection cap, framing errors.

These speak raw HTTP over a socket, because the point is what the server does with
requests no well-behaved client would send.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from ptlab.synth.serve import auth as auth_module

KEY = "sk-serve-test-0123456789"
CHAT = b'{"messages": [{"role": "user", "content": "hi"}]}'


def connect(srv, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(srv.server_address[:2], timeout=timeout)


def read_response(sock: socket.socket) -> tuple[int, dict, dict]:
    """One HTTP response with a Content-Length body: (status, lower-cased headers, JSON body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(rest[:length])


def closed_by_server(sock: socket.socket, wait_s: float = 3.0) -> bool:
    """True if the server closes the connection within `wait_s` (EOF or reset), False if it stays open."""
    sock.settimeout(wait_s)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def exchange(srv, data: bytes, wait_s: float = 3.0) -> tuple[int, dict, dict, bool]:
    """Send `data` on a new connection: (status, headers, body, whether the server closed within `wait_s`)."""
    with connect(srv) as sock:
        sock.sendall(data)
        status, headers, body = read_response(sock)
        return status, headers, body, closed_by_server(sock, wait_s)


def post(path: str = "/v1/chat/completions", headers: str = "", body: bytes = b"") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode() + body


def assert_error_shape(body: dict, code: str) -> None:
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"] and err["code"] == code


def test_auth_is_checked_before_the_body_and_closes(serve, monkeypatch):
    compared = []
    real = auth_module.hmac.compare_digest
    monkeypatch.setattr(auth_module.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    srv = serve(api_key=KEY)
    for auth in ("", "Authorization: Bearer wrong\r\n", f"Authorization: Bearer {KEY[:-1]}\r\n"):
        started = time.monotonic()
        # a terabyte announced, nothing sent: the 401 must come without waiting for the body
        status, headers, body, closed = exchange(srv, post(headers=f"{auth}Content-Length: 1000000000000\r\n"))
        assert time.monotonic() - started < 2.0
        assert status == 401 and headers["connection"] == "close" and closed
        assert_error_shape(body, "invalid_api_key")
    assert compared and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in compared)
    ok = exchange(srv, post(headers=f"Authorization: Bearer {KEY}\r\nContent-Length: {len(CHAT)}\r\n", body=CHAT), 0.2)
    assert ok[0] == 200 and ok[2]["choices"][0]["message"]["content"] == "echo: hi" and not ok[3]
    assert srv.stats.as_dict()["counts"] == {"received": 4, "unauthorized": 3, "ok": 1}


def test_expect_100_continue_is_answered_only_once_the_key_is_accepted(serve):
    srv = serve(api_key=KEY)
    expect = f"Expect: 100-continue\r\nContent-Length: {len(CHAT)}\r\n"
    with connect(srv) as sock:
        sock.sendall(post(headers=expect))
        status, _, body = read_response(sock)  # a 401 straight away, no "100 Continue" before it
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    with connect(srv) as sock:
        sock.sendall(post(headers=f"Authorization: Bearer {KEY}\r\n{expect}"))
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(CHAT)
        status, _, body = read_response(sock)
    assert status == 200 and body["choices"][0]["message"]["content"] == "echo: hi"


def test_auth_covers_every_route_but_health(serve):
    srv = serve(api_key=KEY)
    with httpx.Client(base_url=srv.url.removesuffix("/v1")) as client:
        assert client.get("/health").status_code == 200
        for path in ("/v1/models", "/ptlab/stats", "/v1/nowhere"):
            r = client.get(path)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", path
        assert client.post("/v1/completions", json={"prompt": "x"}).status_code == 401
        assert client.post("/v1/nowhere", json={}).status_code == 401
        authed = {"Authorization": f"Bearer {KEY}"}
        assert client.get("/v1/models", headers=authed).json()["data"][0]["id"] == "echo"
        assert client.get("/ptlab/stats", headers=authed).json()["counts"]["unauthorized"] == 5
        assert client.get("/v1/nowhere", headers=authed).status_code == 404


def test_body_over_the_limit_is_413_and_closes(serve):
    srv = serve(max_body_bytes=1000)
    fits = json.dumps({"messages": [{"role": "user", "content": "x"}], "user": "u" * 900}).encode()
    assert len(fits) <= 1000
    assert exchange(srv, post(headers=f"Content-Length: {len(fits)}\r\n", body=fits), 0.2)[0] == 200
    status, headers, body, closed = exchange(srv, post(headers="Content-Length: 1001\r\n"))
    assert status == 413 and closed and headers["connection"] == "close"
    assert_error_shape(body, "request_too_large")
    default = serve()  # 1 MiB by default
    assert exchange(default, post(headers=f"Content-Length: {(1 << 20) + 1}\r\n"))[0] == 413
    assert srv.stats.as_dict()["counts"]["too_large"] == 1


@pytest.mark.parametrize("headers, status, code", [
    ("", 411, "length_required"),
    ("Transfer-Encoding: chunked\r\n", 411, "length_required"),
    ("Content-Length: abc\r\n", 400, "invalid_content_length"),
    ("Content-Length: -5\r\n", 400, "invalid_content_length"),
    ("Content-Length: +5\r\n", 400, "invalid_content_length"),
    ("Content-Length: 99999999999999999999999\r\n", 400, "invalid_content_length"),
    ("Content-Length: 5\r\nContent-Length: 6\r\n", 400, "invalid_content_length"),
])
def test_missing_or_invalid_content_length_is_a_json_error(serve, headers, status, code):
    srv = serve()
    got, _, body, closed = exchange(srv, post(headers=headers))
    assert (got, closed) == (status, True)
    assert_error_shape(body, code)


def test_body_shorter_than_its_length_is_400(serve):
    srv = serve()
    with connect(srv) as sock:
        sock.sendall(post(headers="Content-Length: 100\r\n", body=b'{"messages": []}'))
        sock.shutdown(socket.SHUT_WR)  # the client gives up mid-body
        status, _, body = read_response(sock)
    assert status == 400 and body["error"]["code"] == "incomplete_body"


def test_malformed_request_line_and_unknown_method_are_json_errors(serve):
    srv = serve()
    status, _, body, closed = exchange(srv, b"GARBAGE\r\n\r\n")
    assert status == 400 and closed and "error" in body
    status, _, body, _ = exchange(srv, b"DELETE /v1/models HTTP/1.1\r\nHost: t\r\n\r\n", 0.2)
    assert status == 501 and "error" in body
    status, _, body, closed = exchange(srv, post("/v1/nowhere", "Content-Length: 2\r\n", b"{}"))
    assert status == 404 and closed and body["error"]["code"] == "not_found"


def test_a_bad_request_keeps_the_connection_for_the_next(serve):
    srv = serve()
    with connect(srv) as sock:
        sock.sendall(post(headers="Content-Length: 9\r\n", body=b"{not json"))
        assert read_response(sock)[0] == 400
        sock.sendall(post(headers=f"Content-Length: {len(CHAT)}\r\n", body=CHAT))
        status, _, body = read_response(sock)
    assert status == 200 and body["choices"][0]["message"]["content"] == "echo: hi"


def test_idle_connections_are_closed(serve):
    srv = serve(idle_timeout_s=0.3)
    with connect(srv) as silent:  # never sends a byte
        assert closed_by_server(silent, wait_s=5.0)
    with connect(srv) as slow:  # stops in the middle of its headers
        slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n")
        assert closed_by_server(slow, wait_s=5.0)
    with connect(srv) as kept:  # idle after a complete exchange
        kept.sendall(post(headers=f"Content-Length: {len(CHAT)}\r\n", body=CHAT))
        assert read_response(kept)[0] == 200
        assert closed_by_server(kept, wait_s=5.0)
    deadline = time.monotonic() + 5
    while srv.connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not srv.connections


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_connections_over_the_cap_get_503_without_a_thread_each(serve):
    srv = serve(max_connections=2)
    health = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    held = [connect(srv) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(health)
            assert read_response(sock)[0] == 200  # both admitted and kept open
        threads = threading.active_count()
        refused = [exchange(srv, health) for _ in range(20)]
        assert all(status == 503 and closed for status, _, _, closed in refused)
        assert_error_shape(refused[0][2], "server_busy")
        assert refused[0][1]["retry-after"] == "1"
        assert threading.active_count() <= threads + 1  # the one thread that answers 503s, no more
        assert srv.stats.as_dict()["counts"]["busy"] == 20
    finally:
        held[0].close()
    assert wait_for(lambda: len(srv.connections) == 1)
    assert exchange(srv, health, 0.2)[0] == 200  # room again
    held[1].close()


def test_stop_ends_open_keep_alive_connections(serve):
    srv = serve()
    baseline = threading.active_count()
    socks = [connect(srv) for _ in range(5)]
    for sock in socks:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200
    assert threading.active_count() >= baseline + 5
    srv.stop()
    assert wait_for(lambda: threading.active_count() <= baseline - 1)  # handlers and the serve loop are gone
    for sock in socks:
        sock.close()
