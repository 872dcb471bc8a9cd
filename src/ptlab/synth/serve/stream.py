"""``stream: true`` for `ptlab serve`: each choice's text sent as server-sent events the moment it is generated.

Why this shape: generation happens on whatever thread the responder uses (the batcher
thread for a model, the handler's own thread for the fakes), but only the handler may
write to its socket — a slow client must never stall a batch. So generated pieces go
through a queue that the handler drains; when a piece is produced on the handler's own
thread it is written at once. Text that could still turn into a stop string is held
back, so a client never receives text the final reply cuts off. The response uses
chunked transfer-encoding, so the connection stays open for the client's next request.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from ptlab.synth.serve.errors import error_payload
from ptlab.synth.serve.responders import Completion
from ptlab.synth.serve.validate import Parsed
from ptlab.synth.teachers.base import ChatRequest

log = logging.getLogger(__name__)


class TextDeltas:
    """Generated pieces in, pieces safe to send out: nothing at or after a stop string is ever sent."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(s for s in stops if s)
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.pending = ""
        self.sent: list[str] = []
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped or not piece:
            return ""
        buf = self.pending + piece
        cuts = [buf.index(s) for s in self.stops if s in buf]
        if cuts:
            self.stopped, out, self.pending = True, buf[: min(cuts)], ""
        else:
            keep = min(self.hold, len(buf))
            out, self.pending = buf[: len(buf) - keep], buf[len(buf) - keep :]
        if out:
            self.sent.append(out)
        return out

    def finish(self, final: str) -> str:
        """What is left to send so that the client's text is the reply's `final` text."""
        sent = "".join(self.sent)
        if not final.startswith(sent):  # the generator's pieces and its final text disagree: cannot unsend
            log.warning("ptlab serve: streamed text is not a prefix of the final reply")
        return final[len(sent) :]


def stream_choices(submit: Callable, requests: tuple[ChatRequest, ...], on_piece: Callable[[int, str], None],
                   on_done: Callable[[int, Future], None]) -> None:
    """Run every request (choice k is requests[k]); call `on_piece(k, text)` as text arrives and
    `on_done(k, future)` once per choice when it ends — always on the calling thread."""
    events: queue.SimpleQueue = queue.SimpleQueue()
    owner = threading.get_ident()
    deltas = [TextDeltas(r.stop) for r in requests]
    remaining = len(requests)

    def handle(k: int, item) -> None:
        nonlocal remaining
        if isinstance(item, str):
            piece = deltas[k].feed(item)
        else:  # the choice's future: done
            remaining -= 1
            piece = deltas[k].finish(item.result().text) if item.exception() is None else ""
        if piece:
            on_piece(k, piece)
        if not isinstance(item, str):
            on_done(k, item)

    def drain() -> None:
        while True:
            try:
                handle(*events.get_nowait())
            except queue.Empty:
                return

    def listener(k: int):
        def on_text(piece: str) -> None:
            events.put((k, piece))
            if threading.get_ident() == owner:
                drain()  # generated on this thread (no model): write it now

        return on_text

    for k, request in enumerate(requests):
        fut = submit(request, listener(k))
        fut.add_done_callback(lambda f, k=k: events.put((k, f)))
    drain()
    while remaining:
        handle(*events.get())


def stream_events(out: EventStream, parsed: Parsed, submit: Callable) -> list[Completion] | BaseException:
    """A streamed reply's choices: role chunks (chat), text as generated, a finish chunk per choice.
    Returns the completions in choice order, or the first choice's failure."""
    if parsed.kind == "chat":
        for k in range(len(parsed.requests)):
            out.choice(k, "", role=True)
    done: dict[int, Completion] = {}
    failures: list[BaseException] = []

    def on_done(k: int, fut: Future) -> None:
        if fut.exception() is not None:
            failures.append(fut.exception())
            return
        done[k] = fut.result()
        out.choice(k, None if parsed.kind == "chat" else "", finish_reason=done[k].finish_reason)

    stream_choices(submit, parsed.requests, out.choice, on_done)
    return failures[0] if failures else [done[k] for k in range(len(parsed.requests))]


class EventStream:
    """Server-sent events in HTTP/1.1 chunks on `wfile`; a client that went away makes later writes no-ops."""

    def __init__(self, wfile, kind: str, cid: str, model: str):
        self.wfile = wfile
        self.kind = kind
        self.base = {"id": cid, "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                     "created": int(time.time()), "model": model}
        self.broken = False

    def _write(self, data: bytes) -> None:
        if self.broken:
            return
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if data else b"0\r\n\r\n")
        except OSError:
            self.broken = True

    def event(self, payload: dict) -> None:
        self._write(f"data: {json.dumps(payload)}\n\n".encode())

    def choice(self, k: int, text: str | None = None, finish_reason: str | None = None, role: bool = False) -> None:
        if self.kind == "chat":
            delta = ({"role": "assistant"} if role else {}) | ({} if text is None else {"content": text})
            choice = {"index": k, "delta": delta, "finish_reason": finish_reason}
        else:
            choice = {"index": k, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
        self.event({**self.base, "choices": [choice]})

    def usage(self, usage: dict) -> None:
        self.event({**self.base, "choices": [], "usage": usage})

    def error(self, message: str) -> None:
        self.event(error_payload(message, "server_error", code="generation_failed"))

    def done(self) -> None:
        self._write(b"data: [DONE]\n\n")
        self._write(b"")  # the last chunk
