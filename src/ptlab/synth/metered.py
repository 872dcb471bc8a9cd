"""`MeteredTeacher`: any backend behind the reply cache, the budget and exact accounting.

Why a wrapper and hooks: caching, budgeting and counting are the same for
every backend, but only the backend knows when a request is really sent and
when its reply arrives. The backend calls `admit(i)` just before sending
request i (we reserve budget there) and `done(i, reply)` as soon as it has the
final reply (we commit it to the cache there, so a killed run keeps it).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from dataclasses import replace

from ptlab.synth.budget import Accounting, Budget, Reservation
from ptlab.synth.cache import ReplyCache, cache_key
from ptlab.synth.teachers.base import BUDGET_SPENT, ChatReply, ChatRequest


class MeteredTeacher:
    """A `Teacher`: cached, budgeted and counted. `accounting` is cumulative over calls."""

    def __init__(self, inner, cache: ReplyCache | None = None, budget: Budget | None = None):
        self.inner = inner
        self.backend = inner.backend
        self.model = inner.model
        self.cache = cache
        self.budget = budget or Budget()
        self.accounting = Accounting()
        self._lock = threading.Lock()
        self._hooked = "hooks" in inspect.signature(inner.generate).parameters

    @property
    def name(self) -> str:
        return f"{self.backend}:{self.model}"

    def close(self) -> None:
        """Close the reply cache now. Left to the garbage collector, a late close checkpoints the WAL into
        whatever file then has the cache's name (one a user or a heal replaced meanwhile)."""
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> "MeteredTeacher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        requests = list(requests)
        keys = [cache_key(self.backend, self.model, r) for r in requests]
        hits = self.cache.get_many(keys) if self.cache else {}
        replies: list[ChatReply | None] = [None] * len(requests)
        first: dict[str, int] = {}
        todo: list[int] = []
        dups: list[int] = []
        for i, key in enumerate(keys):
            if key in hits:
                replies[i] = replace(hits[key], meta=dict(hits[key].meta))
            elif key in first:
                dups.append(i)
            else:
                first[key] = i
                todo.append(i)
        with self._lock:
            self.accounting.requests += len(requests)
            self.accounting.cached += len(requests) - len(todo) - len(dups)
        if todo:
            self.budget.ensure_fits_one(requests[todo[0]], self.name)
            run = _Run(self, [requests[i] for i in todo], [keys[i] for i in todo])
            for j, reply in enumerate(run.execute()):
                replies[todo[j]] = reply
        for i in dups:
            src = replies[first[keys[i]]]
            meta = {**src.meta, "attempts": 0, "cost": 0}
            replies[i] = replace(src, cached=src.ok, meta=meta)
        with self._lock:
            self.accounting.deduplicated += len(dups)
        return replies  # type: ignore[return-value]

    def report(self) -> dict:
        """Accounting plus budget state, as a plain dict (for results files and logs)."""
        with self._lock:
            acc = self.accounting.as_dict()
        return {"teacher": self.name, **acc, "budget": self.budget.as_dict()}

    # called by _Run under no lock
    def _record(self, request: ChatRequest, key: str, reply: ChatReply, paid: bool, skipped: bool) -> None:
        if paid and self.cache is not None:
            self.cache.put(key, self.backend, self.model, request, reply)
        with self._lock:
            acc = self.accounting
            attempts = int(reply.meta.get("attempts", 0))
            acc.attempts += attempts
            acc.retried += max(attempts - 1, 0)
            acc.add_faults(reply.meta.get("faults", {}))
            if skipped:
                acc.skipped += 1
            elif paid:
                acc.paid += 1
                acc.prompt_tokens += reply.prompt_tokens
                acc.completion_tokens += reply.completion_tokens
            else:
                acc.failed += 1


class _Run:
    """One `generate` call's uncached, unique requests: the hooks the backend calls."""

    def __init__(self, owner: MeteredTeacher, requests: list[ChatRequest], keys: list[str]):
        self.owner = owner
        self.requests = requests
        self.keys = keys
        self.reservations: dict[int, Reservation] = {}
        self.finished: dict[int, ChatReply] = {}
        self._lock = threading.Lock()

    def admit(self, index: int) -> bool | None:
        res = self.owner.budget.reserve(self.requests[index])
        if res is None:
            return None if self.owner.budget.could_fit_later(self.requests[index]) else False
        with self._lock:
            self.reservations[index] = res
        return True

    def done(self, index: int, reply: ChatReply) -> None:
        with self._lock:
            if index in self.finished:
                return
            self.finished[index] = reply
            res = self.reservations.pop(index, None)
        paid = reply.ok and res is not None
        if res is not None:
            self.owner.budget.settle(res, paid=paid, tokens=reply.prompt_tokens + reply.completion_tokens)
        reply.meta["cost"] = 1 if paid else 0
        self.owner._record(self.requests[index], self.keys[index], reply, paid, skipped=res is None and not reply.ok)

    def skip(self, index: int) -> ChatReply:
        return ChatReply("", error=BUDGET_SPENT, meta={"attempts": 0, "cost": 0})

    def execute(self) -> list[ChatReply]:
        try:
            if self.owner._hooked:
                out = self.owner.inner.generate(self.requests, hooks=self)
            else:
                out = self._unhooked()
        finally:
            with self._lock:
                leftover = list(self.reservations.values())
                self.reservations.clear()
            for res in leftover:  # the backend raised mid-run: give back what was never settled
                self.owner.budget.settle(res, paid=False)
        for j, reply in enumerate(out):
            if j not in self.finished:  # a backend that forgot to call done()
                self.done(j, reply)
        return [self.finished[j] for j in range(len(self.requests))]

    def _unhooked(self) -> list[ChatReply]:
        """For third-party teachers without hooks: reserve all up front, call once."""
        admitted = [j for j in range(len(self.requests)) if self.admit(j)]  # None (wait) is a skip here: we hold them
        got = self.owner.inner.generate([self.requests[j] for j in admitted]) if admitted else []
        out: list[ChatReply] = [self.skip(j) for j in range(len(self.requests))]
        for j, reply in zip(admitted, got):
            reply.meta.setdefault("attempts", 1)
            out[j] = reply
            self.done(j, reply)
        for j in range(len(self.requests)):
            if j not in self.finished:
                self.done(j, out[j])
        return out
