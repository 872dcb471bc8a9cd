"""Connections for `ptlab serve`: a cap on how many are open, a 503 past it, and closing without a reset.

Why: the server spends one thread per connection, so without a cap a flood of
connections is a flood of threads. Past the cap a connection gets a JSON 503 from
one shared thread (at most `backlog` waiting; beyond that it is simply closed), so
refusing costs no thread per connection. Closing a connection whose request body
was not read (401, 413, 503) must not make the kernel reset it — a reset can
destroy the error reply before the client reads it — so the server stops writing,
then reads and discards for a short, bounded while ("lingering close", as Apache
and nginx do) before it closes.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time

from ptlab.synth.serve.errors import error_payload

LINGER_S = 1.0  # at most this long, and LINGER_BYTES, spent discarding an unread request
LINGER_BYTES = 256 * 1024


def linger_close(sock: socket.socket, seconds: float = LINGER_S, max_bytes: int = LINGER_BYTES) -> None:
    """Send FIN, discard what the client still sends (bounded), so the reply is not lost to a reset."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + seconds
        discarded = 0
        while discarded < max_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                return
            discarded += len(data)
    except OSError:
        return


def busy_response(retry_after_s: int = 1) -> bytes:
    body = json.dumps(error_payload("the server is at its connection limit; retry shortly", "server_error",
                                    code="server_busy")).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Retry-After: {retry_after_s}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class BusyRejecter:
    """Answers connections over the cap with a 503, from one thread started on first use."""

    def __init__(self, backlog: int = 64, read_s: float = 0.5):
        self.read_s = read_s
        self._queue: queue.Queue = queue.Queue(backlog)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._response = busy_response()

    def reject(self, sock: socket.socket) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ptlab-serve-busy", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(sock)
        except queue.Full:  # a flood: no reply at all is the cheapest refusal
            sock.close()

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread = None

    def _loop(self) -> None:
        while (sock := self._queue.get()) is not None:
            try:
                self._answer(sock)
            finally:
                sock.close()

    def _answer(self, sock: socket.socket) -> None:
        """Read (a bounded part of) the request so the reply is not lost to a reset, then answer 503."""
        deadline = time.monotonic() + self.read_s
        seen = b""
        try:
            while b"\r\n\r\n" not in seen and len(seen) < 65536 and (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    break
                seen += data
            sock.settimeout(self.read_s)
            sock.sendall(self._response)
        except OSError:
            return
        linger_close(sock, self.read_s)
