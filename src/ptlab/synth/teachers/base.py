"""The teacher protocol every backend implements (openai, hf, simulated).

A request carries everything that decides the reply, so (backend, model,
request) is a complete cache key; `sample_index` tells apart repeated samples of
the same prompt at temperature > 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[tuple[str, str], ...]  # ((role, content), ...)
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    sample_index: int = 0

    @classmethod
    def user(cls, text: str, **kw) -> "ChatRequest":
        return cls(messages=(("user", text),), **kw)

    def key_fields(self) -> dict:
        return asdict(self)


@dataclass
class ChatReply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    meta: dict = field(default_factory=dict)


@runtime_checkable
class Teacher(Protocol):
    """Answers chat requests. `backend` and `model` name it in cache keys and provenance."""

    backend: str
    model: str

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]: ...
