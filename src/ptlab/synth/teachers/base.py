"""The teacher protocol every backend implements (openai, hf, simulated).

A request carries everything that decides the reply, so (backend, model,
request) is a complete cache key; `sample_index` tells apart repeated samples of
the same prompt at temperature > 0.

Two layers use this protocol. A *backend* (``OpenAITeacher``, ``HFTeacher``,
``SimulatedTeacher``) only talks to a model; it accepts optional `ReplyHooks`
so that the layer above can reserve budget right before each request is sent
and persist each reply the moment it arrives. ``MeteredTeacher`` (cache, budget,
accounting) wraps a backend and is what callers normally use; both satisfy
`Teacher`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[tuple[str, str], ...]  # ((role, content), ...)
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    sample_index: int = 0

    @classmethod
    def user(cls, text: str, **kw) -> ChatRequest:
        return cls(messages=(("user", text),), **kw)

    def key_fields(self) -> dict:
        """Every field, as JSON-ready values (what `asdict` gives, without its recursive cost)."""
        return {
            "messages": [list(m) for m in self.messages],
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "sample_index": self.sample_index,
        }

    def message_dicts(self) -> list[dict[str, str]]:
        """The messages in the OpenAI / chat-template shape: [{"role", "content"}, ...]."""
        return [{"role": role, "content": content} for role, content in self.messages]

    def prompt_chars(self) -> int:
        return sum(len(content) for _, content in self.messages)


BUDGET_SPENT = "budget exhausted"  # the `error` of a request not sent because the budget was spent


@dataclass
class ChatReply:
    """A reply, or why there is none: `error` is None exactly when `text` is a real answer.

    `meta` carries per-call facts for provenance: ``attempts`` (HTTP attempts or
    1), ``cost`` (queries charged to the budget: 1 when paid, 0 when cached or
    failed), ``finish_reason`` where the backend reports one.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    meta: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ReplyHooks(Protocol):
    """Called by a backend around each request (from any thread, or its event loop)."""

    def admit(self, index: int) -> bool | None:
        """Right before request `index` is first sent: True send it; False skip it (budget spent);
        None not yet: it fits only if reservations now in flight give tokens/queries back, so
        ask again once some of this backend's requests are done (or shortly, if none are)."""
        ...

    def done(self, index: int, reply: ChatReply) -> None:
        """As soon as request `index` has its final reply (success or error). A failed reply's
        ``meta["billable"]`` says whether its last attempt may have been billed (default: yes)."""
        ...

    # Optional (a backend that retries calls it when the hooks have it):
    #   retry(index, billable) -> bool | None: right before request `index` is sent again after a
    #   failed attempt (`billable`: the provider may have billed that attempt). True send it;
    #   False give up, ending the request with a BUDGET_SPENT error; None not yet (as for admit).


@runtime_checkable
class Teacher(Protocol):
    """Answers chat requests. `backend` and `model` name it in cache keys and provenance."""

    backend: str
    model: str

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]: ...
