"""What answers a completion inside `ptlab serve`: a model, or a fast fake.

`EchoResponder` and `CannedResponder` answer in microseconds without a model,
so the teacher's own overhead can be measured (throughput benchmark) and fault
tests run in a second. `ModelResponder` runs a ptlab / Hugging Face model and
batches concurrent requests: handler threads queue their request, one worker
thread takes whatever is waiting (up to `max_batch`) and generates it in one
batched call — the only way a CPU model keeps up with many clients.

Every responder has ``submit(request, on_text=None) -> Future[Completion]``:
`on_text(piece)` receives each new piece of text as it is generated (for
``stream: true``), from whatever thread generates it. ``complete(request)`` is
the blocking form.
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from ptlab.synth.teachers.base import ChatReply, ChatRequest

log = logging.getLogger(__name__)

OnText = Callable[[str], None]


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"


def _words(text: str) -> int:
    return len(text.split())


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to its first stop string (as the hf backend cuts), and whether one was found."""
    cuts = [text.index(s) for s in stops if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _answered(complete: Callable[[], Completion]) -> Future:
    """A future already holding `complete()`'s result, or the exception it raised."""
    fut: Future = Future()
    try:
        fut.set_result(complete())
    except Exception as e:  # noqa: BLE001 - the caller reads it from the future
        fut.set_exception(e)
    return fut


def submit_to(responder, request: ChatRequest, on_text: OnText | None = None) -> Future:
    """`responder.submit(...)`; a responder with only `complete(request)` answers inline (and does not stream)."""
    submit = getattr(responder, "submit", None)
    if submit is not None:
        return submit(request, on_text)
    return _answered(lambda: responder.complete(request))


class InlineResponder(ABC):
    """A responder without a model: it answers on the caller's thread, one word per token.

    `token_delay_s` makes it a slow generator (seconds per word), so tests can check that
    streaming sends each word as it is produced rather than the whole reply at the end.
    """

    token_delay_s: float = 0.0

    @abstractmethod
    def reply_words(self, request: ChatRequest) -> list[str]:
        """The reply as words (each one "token")."""

    def complete(self, request: ChatRequest, on_text: OnText | None = None) -> Completion:
        words = self.reply_words(request)
        finish = "length" if len(words) > request.max_tokens else "stop"
        words = words[: request.max_tokens]
        for k, word in enumerate(words):
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            if on_text is not None:
                on_text(word if k == 0 else f" {word}")
        text, stopped = _cut_at_stop(" ".join(words), request.stop)
        if stopped:
            finish = "stop"
        prompt = sum(_words(c) for _, c in request.messages)
        return Completion(text, prompt, _words(text) if stopped else len(words), finish)

    def submit(self, request: ChatRequest, on_text: OnText | None = None) -> Future:
        return _answered(lambda: self.complete(request, on_text))


class EchoResponder(InlineResponder):
    """Replies `echo: <last user message>` cut to `max_tokens` words; tokens are words."""

    def __init__(self, token_delay_s: float = 0.0):
        self.token_delay_s = token_delay_s

    def reply_words(self, request: ChatRequest) -> list[str]:
        last = next((c for r, c in reversed(request.messages) if r == "user"), "")
        return f"echo: {last}".split()


class CannedResponder(InlineResponder):
    """Replies the same text to everything (the cheapest possible server)."""

    def __init__(self, text: str = "The answer is 42.", token_delay_s: float = 0.0):
        self.text = text
        self.tokens = _words(text)
        self.token_delay_s = token_delay_s

    def reply_words(self, request: ChatRequest) -> list[str]:
        return self.text.split()


class ModelResponder:
    """A local model behind a micro-batching queue (see module docstring).

    One request must never fail the others it happens to be batched with: requests are
    validated before they are queued, and when the model fails on a batch, the failed
    requests are generated again one by one, so only the one that fails alone fails.
    """

    def __init__(self, teacher, max_batch: int = 8, wait_s: float = 0.005):
        self.teacher = teacher  # an HFTeacher (anything with generate(list[ChatRequest]))
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._streams = _accepts_on_text(teacher)
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, name="ptlab-serve-batcher", daemon=True).start()

    def submit(self, request: ChatRequest, on_text: OnText | None = None) -> Future:
        fut: Future = Future()
        self._queue.put((request, fut, None if on_text is None else _Resumable(on_text)))
        return fut

    def complete(self, request: ChatRequest) -> Completion:
        return self.submit(request).result()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            try:
                while len(batch) < self.max_batch:
                    batch.append(self._queue.get(timeout=self.wait_s))
            except queue.Empty:
                pass
            try:
                self._run(batch)
            except Exception as e:  # noqa: BLE001 - never let the batcher die: fail what is unanswered
                for _, fut, _ in batch:
                    if not fut.done():
                        fut.set_exception(e)

    def _run(self, batch: list) -> None:
        """Generate `batch`; if some of it fails and it was a real batch, retry those alone."""
        outcomes = self._generate(batch)
        if len(batch) > 1 and any(isinstance(o, Exception) for o in outcomes):
            log.warning("ptlab serve: a batch of %d failed in part; retrying its failed requests one by one",
                        len(batch))
            for _, _, listener in batch:
                if listener is not None:
                    listener.restart()
            outcomes = [self._generate([item])[0] if isinstance(o, Exception) else o
                        for item, o in zip(batch, outcomes)]
        for (_, fut, _), outcome in zip(batch, outcomes):
            if isinstance(outcome, Exception):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)

    def _generate(self, batch: list) -> list:
        """One model call: a Completion or an Exception per request."""
        requests = [req for req, _, _ in batch]
        listeners = [cb for _, _, cb in batch]
        try:
            if self._streams and any(listeners):
                replies = self.teacher.generate(requests, on_text=_fan_out(listeners))
            else:
                replies = self.teacher.generate(requests)
            if len(replies) != len(batch):
                raise RuntimeError(f"the model answered {len(replies)} of {len(batch)} requests")
        except Exception as e:  # noqa: BLE001 - a failed batch fails its requests, not the server
            return [e] * len(batch)
        return [_completion(reply) for reply in replies]


def _completion(reply: ChatReply) -> Completion | Exception:
    if not reply.ok:
        return RuntimeError(reply.error)
    finish = reply.meta.get("finish_reason") or "stop"
    return Completion(reply.text, reply.prompt_tokens, reply.completion_tokens, finish)


class _Resumable:
    """A stream listener that survives its request being generated again (after a failed batch):
    the second run's text is assumed to repeat the first's, so what the client has is not sent twice."""

    def __init__(self, listener: OnText):
        self.listener = listener
        self.delivered = 0  # characters the client has
        self.position = 0  # characters this run has generated

    def restart(self) -> None:
        self.position = 0

    def __call__(self, piece: str) -> None:
        start, self.position = self.position, self.position + len(piece)
        if self.position > self.delivered:
            new = piece[max(0, self.delivered - start) :]
            self.delivered = self.position
            self.listener(new)


def _fan_out(listeners: list[OnText | None]) -> Callable[[int, str], None]:
    """The teacher's `on_text(index, piece)` as each request's own listener; a listener's error stays its own."""

    def on_text(index: int, piece: str) -> None:
        listener = listeners[index]
        if listener is not None:
            try:
                listener(piece)
            except Exception:  # noqa: BLE001 - a client's stream must not fail the model call
                log.exception("ptlab serve: a stream listener failed")

    return on_text


def _accepts_on_text(teacher) -> bool:
    try:
        return "on_text" in inspect.signature(teacher.generate).parameters
    except (TypeError, ValueError):
        return False
