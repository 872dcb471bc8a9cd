"""What answers a chat completion inside `ptlab serve`: a model, or a fast fake.

`EchoResponder` and `CannedResponder` answer in microseconds without a model,
so the teacher's own overhead can be measured (throughput benchmark) and fault
tests run in a second. `ModelResponder` runs a ptlab / Hugging Face model and
batches concurrent requests: handler threads queue their request, one worker
thread takes whatever is waiting (up to `max_batch`) and generates it in one
batched call — the only way a CPU model keeps up with many clients.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from ptlab.synth.teachers.base import ChatReply, ChatRequest


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"


def _words(text: str) -> int:
    return len(text.split())


class EchoResponder:
    """Replies `echo: <last user message>` cut to `max_tokens` words; tokens are words."""

    def complete(self, request: ChatRequest) -> Completion:
        last = next((c for r, c in reversed(request.messages) if r == "user"), "")
        words = f"echo: {last}".split()
        finish = "length" if len(words) > request.max_tokens else "stop"
        words = words[: request.max_tokens]
        prompt = sum(_words(c) for _, c in request.messages)
        return Completion(" ".join(words), prompt, len(words), finish)


class CannedResponder:
    """Replies the same text to everything (the cheapest possible server)."""

    def __init__(self, text: str = "The answer is 42."):
        self.text = text
        self.tokens = _words(text)

    def complete(self, request: ChatRequest) -> Completion:
        prompt = sum(_words(c) for _, c in request.messages)
        return Completion(self.text, prompt, self.tokens)


class ModelResponder:
    """A local model behind a micro-batching queue (see module docstring)."""

    def __init__(self, teacher, max_batch: int = 8, wait_s: float = 0.005):
        self.teacher = teacher  # an HFTeacher (anything with generate(list[ChatRequest]))
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, name="ptlab-serve-batcher", daemon=True).start()

    def complete(self, request: ChatRequest) -> Completion:
        fut: Future = Future()
        self._queue.put((request, fut))
        return fut.result()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            try:
                while len(batch) < self.max_batch:
                    batch.append(self._queue.get(timeout=self.wait_s))
            except queue.Empty:
                pass
            try:
                replies: list[ChatReply] = self.teacher.generate([req for req, _ in batch])
            except Exception as e:  # noqa: BLE001 - a failed batch fails its requests, not the server
                for _, fut in batch:
                    fut.set_exception(e)
                continue
            for (_, fut), reply in zip(batch, replies):
                if reply.ok:
                    finish = reply.meta.get("finish_reason") or "stop"
                    fut.set_result(Completion(reply.text, reply.prompt_tokens, reply.completion_tokens, finish))
                else:
                    fut.set_exception(RuntimeError(reply.error))
