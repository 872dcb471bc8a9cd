"""A teacher budget that is never exceeded, and the exact accounting of a run.

Why reservations: under concurrency, checking "spent < limit" and then sending
lets 64 workers all pass the check at once. Instead each request *reserves*
one query (and an upper bound of its tokens) before it is sent; its end turns
the reservation into spending or gives it back. Hence at any moment
spent + reserved <= limit, whatever the interleaving. Spending uses the
server-reported usage (a reply without usage is charged its bound); the bound
only decides what may be sent.

What is spent: by default a paid reply (retries live inside the request's one
reservation: a 5xx or a timeout costs nothing). With ``strict`` every sent
attempt a provider may bill counts — a timed-out request the provider finished
anyway, a 5xx, a malformed reply — at its token bound, and each retry must
reserve budget of its own; that is the mode whose promise holds against the
provider's own count (a run with 20 queries had 56 served in the default mode
when the server finished requests after the client's timeout).

Why a byte bound on tokens: one token per two characters, the old estimate,
was overrun on CJK and emoji prompts (3,195 tokens spent against 3,000), whose
characters take three or four UTF-8 bytes and, on byte-level BPE, up to one
token per byte. A byte-level BPE token (GPT-2, Llama 3, Qwen, SmolLM, ptlab's
tiny models) or a SentencePiece byte-fallback piece never covers less than one
byte of text, so a message costs at most its UTF-8 bytes plus the tokens its
chat template adds around it. `REQUEST_OVERHEAD` and `MESSAGE_OVERHEAD` cover
the templates ptlab serves, counting each special token as one token and each
template byte as one: ptlab's tiny models add ``<|role|>`` + two newlines per
message (4 with ``<|eos|>``) and ``<|assistant|>\\n`` once; SmolLM2 adds
``<|im_start|>`` role ``\\n`` … ``<|im_end|>\\n`` (the role's bytes + 4) per
message and, once, its default system message (78, when none is given)
plus ``<|im_start|>assistant\\n`` (11): 89 <= 96. A SentencePiece dummy-prefix
piece is one more per message, inside the 8. (Assumed: the tokenizer does not
normalise text into longer text, as NFKC can for rare characters.)

``calibrated`` packs tighter: once replies report usage, a prompt's bound is
the largest observed ratio of prompt tokens to byte bound, times
`CALIBRATION_MARGIN`, never above the byte bound. It is an estimate, not a
promise: a later prompt denser in tokens than any seen can overrun.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from typing import Literal

from ptlab.synth.errors import BudgetError
from ptlab.synth.teachers.base import ChatRequest

REQUEST_OVERHEAD = 96  # tokens a chat template adds once per request (see module docstring)
MESSAGE_OVERHEAD = 8  # tokens a chat template adds per message, beyond the role's bytes
CALIBRATION_MARGIN = 1.25

TokenBound = Literal["bytes", "calibrated"]


def prompt_bound(request: ChatRequest) -> int:
    """An upper bound of the prompt's tokens: UTF-8 bytes of every role and content plus the template's."""
    per_message = sum(MESSAGE_OVERHEAD + len(role.encode()) + len(content.encode()) for role, content in request.messages)
    return REQUEST_OVERHEAD + per_message


def token_upper_bound(request: ChatRequest) -> int:
    """An upper bound of prompt + completion tokens for one call (the completion is capped at max_tokens)."""
    return prompt_bound(request) + request.max_tokens


@dataclass
class Reservation:
    tokens: int


class Budget:
    """Thread-safe query/token limits with reserve → settle. `None` limits are unlimited.

    `spent_queries`/`spent_tokens` start where earlier attempts of the run left them (the ledger).
    """

    def __init__(self, max_queries: int | None = None, max_tokens: int | None = None, *, strict: bool = False,
                 token_bound: TokenBound = "bytes", spent_queries: int = 0, spent_tokens: int = 0):
        for name, value in (("max_queries", max_queries), ("max_tokens", max_tokens)):
            if value is not None and value < 0:
                raise BudgetError(f"budget.{name} must be >= 0 (got {value})")
        if token_bound not in ("bytes", "calibrated"):
            raise BudgetError(f"budget.token_bound must be 'bytes' or 'calibrated' (got {token_bound!r})")
        self.max_queries = max_queries
        self.max_tokens = max_tokens
        self.strict = strict
        self.token_bound = token_bound
        self.spent_queries = spent_queries
        self.spent_tokens = spent_tokens
        self.reserved_queries = 0
        self.reserved_tokens = 0
        self._ratio: float | None = None  # calibrated: the largest prompt tokens / prompt bound seen
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg, spent_queries: int = 0, spent_tokens: int = 0) -> Budget:
        return cls(cfg.max_queries, cfg.max_tokens, strict=cfg.strict, token_bound=cfg.token_bound,
                   spent_queries=spent_queries, spent_tokens=spent_tokens)

    def bound(self, request: ChatRequest) -> int:
        """The tokens one call of `request` may cost, as this budget reserves them."""
        prompt = prompt_bound(request)
        ratio = self._ratio
        if self.token_bound == "calibrated" and ratio is not None:
            prompt = min(prompt, math.ceil(prompt * ratio * CALIBRATION_MARGIN))
        return prompt + request.max_tokens

    def observe(self, request: ChatRequest, prompt_tokens: int) -> None:
        """A reply's reported prompt tokens (calibrated bounds learn from them)."""
        if prompt_tokens > 0:
            ratio = prompt_tokens / prompt_bound(request)
            with self._lock:
                self._ratio = max(self._ratio or 0.0, ratio)

    def ensure_fits_one(self, request: ChatRequest, teacher: str) -> None:
        """Raise a one-line BudgetError when the whole budget is smaller than a single call."""
        if self.max_queries is not None and self.max_queries < 1:
            raise BudgetError(
                f"budget.max_queries={self.max_queries} is smaller than one call to teacher {teacher}; "
                "set budget.max_queries >= 1"
            )
        need = self.bound(request)
        if self.max_tokens is not None and self.max_tokens < need:
            raise BudgetError(
                f"budget.max_tokens={self.max_tokens} is smaller than one call to teacher {teacher} "
                f"(up to {need} tokens: prompt bound + max_tokens={request.max_tokens})"
            )

    def reserve(self, request: ChatRequest) -> Reservation | None:
        """Reserve one query and the call's token bound; None when either limit would be passed."""
        tokens = self.bound(request) if self.max_tokens is not None else 0
        with self._lock:
            if self.max_queries is not None and self.spent_queries + self.reserved_queries + 1 > self.max_queries:
                return None
            if self.max_tokens is not None and self.spent_tokens + self.reserved_tokens + tokens > self.max_tokens:
                return None
            self.reserved_queries += 1
            self.reserved_tokens += tokens
            return Reservation(tokens)

    def could_fit_later(self, request: ChatRequest) -> bool:
        """True when `request` does not fit now but would if in-flight reservations were released."""
        tokens = self.bound(request) if self.max_tokens is not None else 0
        with self._lock:
            if self.reserved_queries == 0:
                return False
            if self.max_queries is not None and self.spent_queries + 1 > self.max_queries:
                return False
            return self.max_tokens is None or self.spent_tokens + tokens <= self.max_tokens

    def settle(self, reservation: Reservation, paid: bool, tokens: int = 0) -> None:
        """Turn a reservation into spending (paid, or charged in strict mode) or give it back."""
        with self._lock:
            self.reserved_queries -= 1
            self.reserved_tokens -= reservation.tokens
            if paid:
                self.spent_queries += 1
                self.spent_tokens += tokens

    def remaining_queries(self) -> int | None:
        with self._lock:
            if self.max_queries is None:
                return None
            return self.max_queries - self.spent_queries - self.reserved_queries

    def as_dict(self) -> dict:
        with self._lock:
            return {
                "max_queries": self.max_queries,
                "max_tokens": self.max_tokens,
                "spent_queries": self.spent_queries,
                "spent_tokens": self.spent_tokens,
                "strict": self.strict,
            }


@dataclass
class Accounting:
    """What a teacher did, request by request. Invariants:
    ``requests == paid + cached + deduplicated + failed + skipped``; over the HTTP
    attempts, ``attempts == paid + failed_sent + retried`` (failed_sent: the failed
    requests that were sent at all), where every retried or failed attempt shows up
    in exactly one of the fault counters; ``awaited <= cached``; and what this
    teacher charged its budget is ``paid + charged_failures`` queries
    (``charged_failures`` is 0 unless the budget is strict).
    """

    requests: int = 0
    paid: int = 0  # replies obtained from the model and charged to the budget
    cached: int = 0  # served from the reply cache, free
    awaited: int = 0  # of `cached`: replies another process was paying for while we waited
    deduplicated: int = 0  # the same request twice in one call: paid once
    failed: int = 0  # no reply after all retries (or a non-retryable error, or no budget left to retry)
    skipped: int = 0  # not sent: the budget was spent
    attempts: int = 0  # calls actually sent to the backend (includes retries)
    retried: int = 0  # attempts beyond the first, per request
    charged_failures: int = 0  # strict budget: failed attempts a provider may bill, charged at their bound
    timeouts: int = 0
    server_errors: int = 0  # 5xx
    rate_limited: int = 0  # 429
    malformed: int = 0  # a 200 whose body was not a usable chat completion
    transport_errors: int = 0  # connection refused / reset
    client_errors: int = 0  # other 4xx (not retried)
    prompt_tokens: int = 0  # of paid replies
    completion_tokens: int = 0

    FAULT_KEYS = ("timeouts", "server_errors", "rate_limited", "malformed", "transport_errors", "client_errors")

    def add_faults(self, faults: dict) -> None:
        for name, count in faults.items():
            if name in self.FAULT_KEYS:
                setattr(self, name, getattr(self, name) + count)

    def as_dict(self) -> dict:
        return asdict(self)
