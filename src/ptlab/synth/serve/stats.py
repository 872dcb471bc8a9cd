"""What `ptlab serve` received and answered, for ``GET /ptlab/stats`` and for tests' accounting.

`ok_by_body` (how many successful replies each distinct request body got) lets a test
check that no request was paid twice; it stops taking new bodies at `max_bodies`, so a
server left running for months does not grow with every request it answers.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

MAX_TRACKED_BODIES = 100_000


@dataclass
class ServerStats:
    counts: Counter = field(default_factory=Counter)  # received, ok, fault_500, unauthorized, ...
    ok_by_body: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    max_bodies: int = MAX_TRACKED_BODIES

    def add(self, name: str, body_hash: str | None = None) -> None:
        with self.lock:
            self.counts[name] += 1
            if body_hash is not None and (body_hash in self.ok_by_body or len(self.ok_by_body) < self.max_bodies):
                self.ok_by_body[body_hash] += 1

    def as_dict(self) -> dict:
        with self.lock:
            return {"counts": dict(self.counts), "ok_by_body": dict(self.ok_by_body)}

