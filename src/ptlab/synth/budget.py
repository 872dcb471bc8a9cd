"""A teacher budget that is never exceeded, and the exact accounting of a run.

Why reservations: under concurrency, checking "spent < limit" and then sending
lets 64 workers all pass the check at once. Instead each request *reserves*
one query (and an upper bound of its tokens) before it is first sent; a success
turns the reservation into spending, a failure releases it. Retries of the same
request live inside its one reservation, so they never cost an extra query.
Hence at any moment spent + reserved <= limit, whatever the interleaving.

Tokens: a request reserves ``max_tokens`` for the completion plus an upper
estimate of its prompt (one token per two characters plus a few per message;
BPE tokenizers average three to four characters per token on text). After the
reply, the server-reported usage replaces the estimate.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass

from ptlab.synth.errors import BudgetError
from ptlab.synth.teachers.base import ChatRequest


def token_upper_bound(request: ChatRequest) -> int:
    """An upper estimate of prompt + completion tokens for one call."""
    prompt = math.ceil(request.prompt_chars() / 2) + 8 * len(request.messages) + 8
    return prompt + request.max_tokens


@dataclass
class Reservation:
    tokens: int


class Budget:
    """Thread-safe query/token limits with reserve → settle. `None` limits are unlimited."""

    def __init__(self, max_queries: int | None = None, max_tokens: int | None = None):
        for name, value in (("max_queries", max_queries), ("max_tokens", max_tokens)):
            if value is not None and value < 0:
                raise BudgetError(f"budget.{name} must be >= 0 (got {value})")
        self.max_queries = max_queries
        self.max_tokens = max_tokens
        self.spent_queries = 0
        self.spent_tokens = 0
        self.reserved_queries = 0
        self.reserved_tokens = 0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg) -> Budget:
        return cls(cfg.max_queries, cfg.max_tokens)

    def ensure_fits_one(self, request: ChatRequest, teacher: str) -> None:
        """Raise a one-line BudgetError when the whole budget is smaller than a single call."""
        if self.max_queries is not None and self.max_queries < 1:
            raise BudgetError(
                f"budget.max_queries={self.max_queries} is smaller than one call to teacher {teacher}; "
                "set budget.max_queries >= 1"
            )
        need = token_upper_bound(request)
        if self.max_tokens is not None and self.max_tokens < need:
            raise BudgetError(
                f"budget.max_tokens={self.max_tokens} is smaller than one call to teacher {teacher} "
                f"(up to {need} tokens: prompt estimate + max_tokens={request.max_tokens})"
            )

    def reserve(self, request: ChatRequest) -> Reservation | None:
        """Reserve one query and the call's token bound; None when either limit would be passed."""
        tokens = token_upper_bound(request) if self.max_tokens is not None else 0
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
        tokens = token_upper_bound(request) if self.max_tokens is not None else 0
        with self._lock:
            if self.reserved_queries == 0:
                return False
            if self.max_queries is not None and self.spent_queries + 1 > self.max_queries:
                return False
            return self.max_tokens is None or self.spent_tokens + tokens <= self.max_tokens

    def settle(self, reservation: Reservation, paid: bool, tokens: int = 0) -> None:
        """Turn a reservation into spending (paid) or give it back (failed)."""
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
            }


@dataclass
class Accounting:
    """What a teacher did, request by request. Invariant:
    ``requests == paid + cached + deduplicated + failed + skipped``; and over the HTTP
    attempts: ``attempts == paid + failed_sent + retried``, where every retried or
    failed attempt shows up in exactly one of the fault counters.
    """

    requests: int = 0
    paid: int = 0  # replies obtained from the model and charged to the budget
    cached: int = 0  # served from the reply cache, free
    deduplicated: int = 0  # the same request twice in one call: paid once
    failed: int = 0  # no reply after all retries (or a non-retryable error)
    skipped: int = 0  # not sent: the budget was spent
    attempts: int = 0  # calls actually sent to the backend (includes retries)
    retried: int = 0  # attempts beyond the first, per request
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
