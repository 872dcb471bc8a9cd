"""`MeteredTeacher`: any backend behind the reply cache, the budget, the ledger and exact accounting.

Why a wrapper and hooks: caching, budgeting and counting are the same for
every backend, but only the backend knows when a request is really sent and
when its reply arrives. The backend calls the hooks of an `Admission` just
before sending each request (budget, in-flight claim, ledger) and as soon as
it has the final reply (charge, cache commit, so a killed run keeps it).

Cache keys include the backend's server (`cache.normal_server` of its
base_url), so two servers that serve one model name never share replies, and
whether the request's sample index is sent as the sampling `seed`: a server
that seeds its sampler from the body alone returns the same sample for every
sample index, so those replies must never be served for seeded requests.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from dataclasses import replace

from ptlab.synth.admission import Admission
from ptlab.synth.budget import Accounting, Budget
from ptlab.synth.cache import ReplyCache, cache_key, normal_server
from ptlab.synth.teachers.base import ChatReply, ChatRequest


class MeteredTeacher:
    """A `Teacher`: cached, budgeted and counted. `accounting` is cumulative over calls.

    `ledger_run` (a `ledger.LedgerRun`): where charges are recorded on disk, so that a later
    attempt of the same run starts its budget from them; `owns_ledger`: close its file with ours.
    """

    def __init__(self, inner, cache: ReplyCache | None = None, budget: Budget | None = None,
                 ledger_run=None, owns_ledger: bool = False):
        self.inner = inner
        self.backend = inner.backend
        self.model = inner.model
        self.server = normal_server(getattr(inner, "base_url", None)) + (
            " seed=sample_index" if getattr(inner, "send_seed", False) else "")
        self.cache = cache
        self.budget = budget or Budget()
        self.ledger_run = ledger_run
        self._owns_ledger = owns_ledger
        self.accounting = Accounting()
        self._lock = threading.Lock()
        self._hooked = "hooks" in inspect.signature(inner.generate).parameters

    @property
    def name(self) -> str:
        return f"{self.backend}:{self.model}"

    def key(self, request: ChatRequest) -> str:
        return cache_key(self.backend, self.model, request, self.server)

    def complete_run(self) -> None:
        """Mark the ledger's run finished (call it once the run's result is safely written): a later run
        under the same run_id starts a new generation instead of counting this one's spending."""
        if self.ledger_run is not None:
            self.ledger_run.complete()

    def close(self) -> None:
        """Close the reply cache now (and stop driving the ledger run). Left to the garbage collector, a late
        close checkpoints the WAL into whatever file then has the cache's name (one a user or a heal replaced
        meanwhile)."""
        if self.cache is not None:
            self.cache.close()
        if self.ledger_run is not None:
            self.ledger_run.release()
            if self._owns_ledger:
                self.ledger_run.ledger.close()

    def __enter__(self) -> "MeteredTeacher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        requests = list(requests)
        keys = [self.key(r) for r in requests]
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
            run = Admission(self, [requests[i] for i in todo], [keys[i] for i in todo])
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
        out = {"teacher": self.name, **acc, "budget": self.budget.as_dict()}
        if self.ledger_run is not None:
            out["ledger"] = {"run_id": self.ledger_run.run_id, "generation": self.ledger_run.generation,
                             "spent_before": [self.ledger_run.spent_queries, self.ledger_run.spent_tokens]}
        return out

    # ---- called by Admission under no lock ---------------------------------------------------
    def _record(self, request: ChatRequest, key: str, reply: ChatReply, paid: bool, skipped: bool) -> None:
        if paid and self.cache is not None:
            self.cache.put(key, self.backend, self.model, request, reply, self.server)
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

    def _record_served(self, reply: ChatReply) -> None:
        """A reply another process paid for while this one waited: a free cache hit."""
        with self._lock:
            self.accounting.cached += 1
            self.accounting.awaited += 1

    def _count_charged_failure(self) -> None:
        with self._lock:
            self.accounting.charged_failures += 1
