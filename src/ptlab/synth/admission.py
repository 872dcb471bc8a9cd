"""What happens around each request a backend sends: claim it, reserve budget, charge it, record it.

`Admission` is one `MeteredTeacher.generate` call's `ReplyHooks` over its
uncached, unique requests. The backend calls `admit(i)` right before it first
sends request i, `retry(i, billable)` before each re-send (strict budgets) and
`done(i, reply)` when it has the final reply.

admit: if another process sharing the reply cache is already paying for the
request (an in-flight claim, see `claims`), the request is not sent; it waits
and is served from the cache when that reply lands (or is sent after all if
the other attempt fails). While waiting it holds neither a reservation nor a
claim, and `admit` answers None ("ask again later"), so the backend keeps
serving its other requests and nothing can deadlock. Otherwise it reserves
budget, claims the key, looks in the cache once more (the reply may have
arrived since the call began) and, in strict mode, writes the attempt to the
ledger before it is sent.

done: a reply is charged (ledger first, then the budget), committed to the
cache, and only then is its claim released, so a waiter finds it. A failure
gives its reservation back, or in strict mode is charged at its bound when the
provider may have billed it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from ptlab.synth.budget import Reservation
from ptlab.synth.claims import Claims
from ptlab.synth.errors import TeacherError
from ptlab.synth.owners import me
from ptlab.synth.teachers.base import BUDGET_SPENT, ChatReply, ChatRequest

POLL_S = 0.05  # how often a waiting request looks for the reply another process is paying for


class Admission:
    def __init__(self, owner, requests: list[ChatRequest], keys: list[str]):
        self.owner = owner  # the MeteredTeacher
        self.budget = owner.budget
        self.ledger = owner.ledger_run
        self.requests = requests
        self.keys = keys
        self.claims = Claims(owner.cache, me()) if owner.cache is not None else None
        self.reservations: dict[int, Reservation] = {}
        self.rows: dict[int, int] = {}  # strict: the ledger row of the attempt under way
        self.claimed: set[int] = set()
        self.waiting: dict[int, float] = {}  # index -> when to look in the cache next
        self.served: dict[int, ChatReply] = {}  # replies another process paid for
        self.finished: dict[int, ChatReply] = {}
        self._lock = threading.Lock()

    # ---- the hooks ---------------------------------------------------------------------------
    def admit(self, index: int) -> bool | None:
        if index in self.served:
            return False
        request, key = self.requests[index], self.keys[index]
        if index in self.waiting:
            if time.monotonic() < self.waiting[index]:
                return None
            if self._serve_from_cache(index):
                return False
            if self.claims.held_by_other(key):  # still being paid for elsewhere: keep waiting, hold nothing
                self._wait(index)
                return None
        res = self.budget.reserve(request)
        if res is None:
            if self.budget.could_fit_later(request):
                return None
            if self.claims is not None and self.claims.held_by_other(key):  # its reply will be free
                self._wait(index)
                return None
            return False
        if self.claims is not None:
            if not self.claims.claim(key):
                self.budget.settle(res, paid=False)
                self._wait(index)
                return None
            if self._serve_from_cache(index):
                self.claims.release(key)
                self.budget.settle(res, paid=False)
                return False
            with self._lock:
                self.claimed.add(index)
                self.waiting.pop(index, None)
        self._hold(index, res)
        return True

    def retry(self, index: int, billable: bool) -> bool | None:
        """Default budgets: retries live inside the first reservation. Strict: charge the failed
        attempt (if billable) and reserve anew; False when no budget is left for another attempt."""
        if not self.budget.strict:
            return True
        self._settle_attempt(index, billable)
        request = self.requests[index]
        res = self.budget.reserve(request)
        if res is None:
            return None if self.budget.could_fit_later(request) else False
        self._hold(index, res)
        return True

    def done(self, index: int, reply: ChatReply) -> None:
        with self._lock:
            if index in self.finished:
                return
            served = self.served.get(index)
            self.finished[index] = served or reply
        if served is not None:
            self.owner._record_served(served)
            return
        attempts = int(reply.meta.get("attempts", 0))
        with self._lock:
            res = self.reservations.get(index)
        paid = reply.ok and res is not None
        if paid:
            tokens = reply.prompt_tokens + reply.completion_tokens
            if reply.meta.get("usage_unreported"):  # a server without usage: spend the bound, not nothing
                tokens = res.tokens
            self.budget.observe(self.requests[index], reply.prompt_tokens)
            self._settle_attempt(index, True, tokens)
        elif res is not None:
            billable = attempts > 0 and bool(reply.meta.get("billable", True))
            self._settle_attempt(index, self.budget.strict and billable)
        reply.meta["cost"] = 1 if paid else 0
        self.owner._record(self.requests[index], self.keys[index], reply, paid,
                           skipped=not reply.ok and attempts == 0)
        self._release_claim(index)  # after the reply is in the cache: a waiter must find it there

    def skip(self, index: int) -> ChatReply:
        return ChatReply("", error=BUDGET_SPENT, meta={"attempts": 0, "cost": 0})

    # ---- running a call ----------------------------------------------------------------------
    def execute(self) -> list[ChatReply]:
        failure: BaseException | None = None
        try:
            if self.owner._hooked:
                out = self.owner.inner.generate(self.requests, hooks=self)
            else:
                out = self._unhooked()
        except BaseException as e:
            failure = e
            raise
        finally:
            self._abandon(failure)
        for j, reply in enumerate(out):
            if j not in self.finished:  # a backend that forgot to call done()
                self.done(j, reply)
        return [self.finished[j] for j in range(len(self.requests))]

    def _unhooked(self) -> list[ChatReply]:
        """For third-party teachers without hooks: admit what may go now, send it in one call, repeat
        for what had to wait (a claim held elsewhere, budget held by in-flight calls)."""
        out: list[ChatReply] = [self.skip(j) for j in range(len(self.requests))]
        pending = list(range(len(self.requests)))
        while pending:
            admitted, later = [], []
            for j in pending:
                verdict = self.admit(j)
                if verdict:
                    admitted.append(j)
                elif verdict is None:
                    later.append(j)
                else:
                    self.done(j, out[j])
            got = self.owner.inner.generate([self.requests[j] for j in admitted]) if admitted else []
            for j, reply in zip(admitted, got):
                reply.meta.setdefault("attempts", 1)
                out[j] = reply
                self.done(j, reply)
            if later and not admitted:
                time.sleep(POLL_S / 5)
            pending = later
        return out

    # ---- parts -------------------------------------------------------------------------------
    def _hold(self, index: int, res: Reservation) -> None:
        row = None
        if self.budget.strict and self.ledger is not None:  # on disk before the attempt goes out
            row = self.ledger.sent(self.keys[index], res.tokens)
        with self._lock:
            self.reservations[index] = res
            if row is not None:
                self.rows[index] = row

    def _settle_attempt(self, index: int, charge: bool, tokens: int | None = None) -> None:
        """End the attempt under way: charge it (a reply: its usage; a failure: its bound) or give it back.
        The ledger is written before the budget, so a kill in between over-counts, never under-counts."""
        with self._lock:
            res = self.reservations.pop(index, None)
            row = self.rows.pop(index, None)
        if res is None:
            return
        if charge:
            cost = res.tokens if tokens is None else tokens
            if self.ledger is not None:
                self.ledger.charge(row, self.keys[index], cost)
            self.budget.settle(res, paid=True, tokens=cost)
            if tokens is None:
                self.owner._count_charged_failure()
        else:
            if self.ledger is not None:
                self.ledger.drop(row)
            self.budget.settle(res, paid=False)

    def _serve_from_cache(self, index: int) -> bool:
        hit = self.owner.cache.get(self.keys[index]) if self.owner.cache is not None else None
        if hit is None:
            return False
        with self._lock:
            self.served[index] = replace(hit, meta={**hit.meta, "awaited": True})
            self.waiting.pop(index, None)
        return True

    def _wait(self, index: int) -> None:
        with self._lock:
            self.waiting[index] = time.monotonic() + POLL_S

    def _release_claim(self, index: int) -> None:
        with self._lock:
            held = index in self.claimed
            self.claimed.discard(index)
        if held:
            self.claims.release(self.keys[index])

    def _abandon(self, failure: BaseException | None) -> None:
        """The call is over: give back what was never settled (the backend raised mid-run) and every claim.
        A strict budget charges such attempts (they may have been served) unless the server refused the
        whole run (a `TeacherError`: bad key, unknown model, unreachable)."""
        charge = self.budget.strict and failure is not None and not isinstance(failure, TeacherError)
        with self._lock:
            leftover = list(self.reservations)
        for index in leftover:
            self._settle_attempt(index, charge)
        with self._lock:
            held = list(self.claimed)
        for index in held:
            self._release_claim(index)
