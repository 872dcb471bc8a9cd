"""Fault injection for `ptlab serve --fault-rate`: what a flaky real server does, on purpose.

Each request draws from a seeded generator: with probability `rate` it gets one
of `kinds` instead of an answer — ``500`` (an internal error), ``429`` (rate
limited, with Retry-After), ``timeout`` (the server stalls `delay_s`, then drops
the connection without a reply), ``malformed`` (HTTP 200 with a body that is
not a chat completion) or ``late`` (the server does the work and counts it as
served, as a provider bills it, but replies only after `delay_s`: a client
whose timeout is shorter never sees the reply it paid for). The server counts
every fault it injects, so a test can check a client's accounting against the
server's.
"""

from __future__ import annotations

import random
import threading

KINDS = ("500", "429", "timeout", "malformed", "late")
DEFAULT_KINDS = ("500", "timeout", "malformed")

MALFORMED_BODIES = (
    b'{"id": "x", "choices": [{"message": {"role": "assistant", "content": "tru',  # truncated JSON
    b'{"id": "x", "object": "chat.completion", "choices": []}',  # no choice
    b'{"id": "x", "choices": [{"message": {"role": "assistant", "content": null}}]}',  # no text
    b"<html><body>502 Bad Gateway</body></html>",  # a proxy's page with status 200
)


class FaultInjector:
    def __init__(self, rate: float = 0.0, kinds: tuple[str, ...] = DEFAULT_KINDS, delay_s: float = 2.0, seed: int = 0):
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ValueError(f"fault kinds must be among {', '.join(KINDS)} (got {', '.join(kinds) or 'none'})")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be in [0, 1] (got {rate})")
        self.rate = rate
        self.kinds = tuple(kinds)
        self.delay_s = delay_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> tuple[str | None, int]:
        """(fault kind or None, an integer for picking a variant)."""
        if self.rate <= 0:
            return None, 0
        with self._lock:
            if self._rng.random() >= self.rate:
                return None, 0
            return self._rng.choice(self.kinds), self._rng.randrange(1 << 30)
