"""The reply cache (SQLite/WAL, keys, hit latency) and the budget (reservations, errors)."""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time

import pytest

from ptlab.synth import Budget, BudgetError, ChatReply, ChatRequest, MeteredTeacher, ReplyCache
from ptlab.synth.budget import token_upper_bound
from ptlab.synth.cache import cache_key, default_cache_path


class CountingTeacher:
    """A backend without hooks that counts its calls (third-party teachers look like this)."""

    backend = "count"
    model = "m1"

    def __init__(self):
        self.calls = 0

    def generate(self, requests):
        self.calls += len(requests)
        return [ChatReply(f"re: {r.messages[-1][1]}", 3, 2) for r in requests]


class HookedTeacher(CountingTeacher):
    """A backend that sends one request at a time through the hooks, like the real ones."""

    def generate(self, requests, hooks=None):
        out = []
        for i, r in enumerate(requests):
            if hooks is not None and not hooks.admit(i):
                reply = ChatReply("", error="budget exhausted", meta={"attempts": 0})
            else:
                self.calls += 1
                reply = ChatReply(f"re: {r.messages[-1][1]}", 3, 2, meta={"attempts": 1})
            out.append(reply)
            if hooks is not None:
                hooks.done(i, reply)
        return out


def test_cache_file_is_wal_under_ptlab_home(home):
    cache = ReplyCache()
    assert default_cache_path() == home / "teacher" / "replies.sqlite"
    req = ChatRequest.user("q")
    cache.put(cache_key("b", "m", req), "b", "m", req, ChatReply("a", 1, 2, meta={"finish_reason": "stop"}))
    mode = sqlite3.connect(home / "teacher" / "replies.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    got = ReplyCache().get(cache_key("b", "m", req))  # a second connection sees the committed row
    assert (got.text, got.prompt_tokens, got.completion_tokens, got.cached) == ("a", 1, 2, True)


def test_cache_key_covers_backend_model_messages_sampling_and_sample_index():
    base = ChatRequest.user("q", temperature=0.7)
    variants = [
        cache_key("openai", "m", base),
        cache_key("hf", "m", base),
        cache_key("openai", "m2", base),
        cache_key("openai", "m", ChatRequest.user("q2", temperature=0.7)),
        cache_key("openai", "m", ChatRequest.user("q", temperature=0.8)),
        cache_key("openai", "m", ChatRequest.user("q", temperature=0.7, top_p=0.9)),
        cache_key("openai", "m", ChatRequest.user("q", temperature=0.7, max_tokens=9)),
        cache_key("openai", "m", ChatRequest.user("q", temperature=0.7, stop=("\n",))),
        cache_key("openai", "m", ChatRequest.user("q", temperature=0.7, sample_index=1)),
    ]
    assert len(set(variants)) == len(variants)
    assert cache_key("openai", "m", base) == cache_key("openai", "m", ChatRequest.user("q", temperature=0.7))


def test_cached_reply_costs_nothing_and_takes_under_a_millisecond(home):
    inner = CountingTeacher()
    teacher = MeteredTeacher(inner, ReplyCache(), Budget(max_queries=1))
    req = ChatRequest.user("hello")
    first = teacher.generate([req])[0]
    assert (first.text, first.cached, first.meta["cost"]) == ("re: hello", False, 1)
    times = []
    for _ in range(300):
        t0 = time.perf_counter()
        again = teacher.generate([req])[0]
        times.append(time.perf_counter() - t0)
    assert (again.text, again.cached, again.meta["cost"]) == ("re: hello", True, 0)
    assert inner.calls == 1
    assert statistics.median(times) < 1e-3, f"median cache hit {statistics.median(times) * 1e6:.0f} us"
    rep = teacher.report()
    assert (rep["requests"], rep["paid"], rep["cached"], rep["budget"]["spent_queries"]) == (301, 1, 300, 1)


def test_duplicates_in_one_call_are_paid_once(home):
    inner = CountingTeacher()
    teacher = MeteredTeacher(inner, ReplyCache(), Budget())
    reqs = [ChatRequest.user("a"), ChatRequest.user("b"), ChatRequest.user("a")]
    out = teacher.generate(reqs)
    assert [r.text for r in out] == ["re: a", "re: b", "re: a"]
    assert [r.meta["cost"] for r in out] == [1, 1, 0]
    assert inner.calls == 2
    rep = teacher.report()
    assert (rep["paid"], rep["deduplicated"], rep["cached"]) == (2, 1, 0)


def test_budget_reservations_never_exceed_limit_across_threads():
    budget = Budget(max_queries=100)
    granted = []

    def grab():
        for _ in range(60):
            res = budget.reserve(ChatRequest.user("x"))
            if res is not None:
                granted.append(res)
                budget.settle(res, paid=len(granted) % 3 != 0)  # a third fail and give back

    threads = [threading.Thread(target=grab) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert budget.spent_queries == 100
    assert budget.reserved_queries == 0
    assert budget.remaining_queries() == 0
    assert budget.reserve(ChatRequest.user("x")) is None


def test_budget_smaller_than_one_call_is_a_clear_error_and_sends_nothing(home):
    inner = CountingTeacher()
    with pytest.raises(BudgetError, match=r"^budget.max_queries=0 is smaller than one call to teacher count:m1"):
        MeteredTeacher(inner, ReplyCache(), Budget(max_queries=0)).generate([ChatRequest.user("q")])
    req = ChatRequest.user("q", max_tokens=256)
    with pytest.raises(BudgetError, match=rf"budget.max_tokens=100 is smaller than one call .*up to {token_upper_bound(req)} tokens"):
        MeteredTeacher(inner, ReplyCache(), Budget(max_tokens=100)).generate([req])
    assert inner.calls == 0


def test_zero_budget_still_serves_cached_replies(home):
    inner = CountingTeacher()
    MeteredTeacher(inner, ReplyCache(), Budget()).generate([ChatRequest.user("q")])
    out = MeteredTeacher(inner, ReplyCache(), Budget(max_queries=0)).generate([ChatRequest.user("q")])
    assert (out[0].text, out[0].cached, inner.calls) == ("re: q", True, 1)


def test_token_budget_counts_reported_usage(home):
    inner = HookedTeacher()  # 3 + 2 = 5 tokens per reply
    req_bound = token_upper_bound(ChatRequest.user("q0", max_tokens=4))
    teacher = MeteredTeacher(inner, ReplyCache(), Budget(max_tokens=req_bound + 5 * 3))
    out = teacher.generate([ChatRequest.user(f"q{i}", max_tokens=4) for i in range(10)])
    paid = [r for r in out if r.ok]
    # reservations are upper bounds: each paid reply then frees its unused tokens for the next
    assert teacher.budget.spent_tokens == 5 * len(paid) <= teacher.budget.max_tokens
    assert len(paid) == 4
    assert [r.error for r in out[4:]] == ["budget exhausted"] * 6
    assert teacher.report()["skipped"] == 6


def test_unhooked_teacher_reserves_everything_up_front(home):
    inner = CountingTeacher()
    teacher = MeteredTeacher(inner, ReplyCache(), Budget(max_queries=3))
    out = teacher.generate([ChatRequest.user(f"q{i}") for i in range(5)])
    assert [r.ok for r in out] == [True, True, True, False, False]
    assert inner.calls == 3
    rep = teacher.report()
    assert (rep["paid"], rep["skipped"], rep["failed"], rep["budget"]["spent_queries"]) == (3, 2, 0, 3)


def test_key_fields_match_every_request_field():
    import json
    from dataclasses import asdict, fields

    r = ChatRequest(messages=(("system", "s"), ("user", "u")), temperature=0.3, stop=("x",), sample_index=2)
    assert set(r.key_fields()) == {f.name for f in fields(r)}  # a new field must join the cache key
    assert json.dumps(r.key_fields(), sort_keys=True) == json.dumps(asdict(r), sort_keys=True)
