"""The openai teacher against `ptlab serve` over loopback: faults, budget, keys, errors."""

from __future__ import annotations

import logging
import socket

import pytest

from ptlab.synth import AuthError, BudgetError, ChatRequest, TeacherError, make_teacher
from ptlab.synth.serve import FaultInjector

KEY = "sk-test-Secret-7f3a9c"


def teacher_for(srv, **kw):
    cfg = {"backend": "openai", "model": "echo", "base_url": srv.url, "api_key_env": "PTLAB_TEST_KEY",
           "concurrency": 16, "timeout_s": 5.0, "max_retries": 6, "backoff_s": 0.01, "backoff_max_s": 0.05}
    cfg.update(kw.pop("cfg", {}))
    return make_teacher(cfg, **kw)


def prompts(n, tag="q"):
    return [ChatRequest.user(f"{tag} number {i}", max_tokens=16) for i in range(n)]


def test_twenty_percent_faults_complete_with_exact_accounting(home, serve, monkeypatch):
    monkeypatch.setenv("PTLAB_TEST_KEY", KEY)
    faults = FaultInjector(0.2, ("500", "timeout", "malformed"), delay_s=3.0, seed=3)
    srv = serve(faults=faults, api_key=KEY)
    teacher = teacher_for(srv, cfg={"timeout_s": 1.5})  # far above a normal reply, even on a loaded machine
    n = 150
    out = teacher.generate(prompts(n))
    assert [r.text for r in out] == [f"echo: q number {i}" for i in range(n)]
    rep = teacher.report()
    server = srv.stats.as_dict()
    counts = server["counts"]
    injected = counts.get("fault_500", 0) + counts.get("fault_timeout", 0) + counts.get("fault_malformed", 0)
    assert injected >= 15, counts  # ~20% of ~190 attempts
    assert (rep["requests"], rep["paid"], rep["failed"], rep["cached"], rep["skipped"]) == (n, n, 0, 0, 0)
    assert rep["attempts"] == counts["received"]
    assert rep["retried"] == injected == rep["attempts"] - n
    assert rep["server_errors"] == counts.get("fault_500", 0)
    assert rep["timeouts"] == counts.get("fault_timeout", 0)
    assert rep["malformed"] == counts.get("fault_malformed", 0)
    assert counts["ok"] == n and sorted(set(server["ok_by_body"].values())) == [1]  # none paid twice
    assert rep["completion_tokens"] == 4 * n  # "echo: q number i" is four words
    assert rep["budget"]["spent_queries"] == n

    again = teacher_for(srv)
    out2 = again.generate(prompts(n))
    assert [r.text for r in out2] == [r.text for r in out] and all(r.cached for r in out2)
    assert srv.stats.as_dict()["counts"]["received"] == counts["received"]  # nothing sent
    assert again.report()["cached"] == n and again.report()["paid"] == 0


def test_retries_exhausted_fail_without_cost(home, serve, monkeypatch):
    monkeypatch.delenv("PTLAB_TEST_KEY", raising=False)
    srv = serve(faults=FaultInjector(1.0, ("500",)))
    teacher = teacher_for(srv, cfg={"max_retries": 2}, budget={"max_queries": 10})
    out = teacher.generate(prompts(4))
    assert all(not r.ok and r.error.startswith("server_errors after 3 attempts: HTTP 500") for r in out)
    rep = teacher.report()
    assert (rep["failed"], rep["paid"], rep["attempts"], rep["retried"], rep["server_errors"]) == (4, 0, 12, 8, 12)
    assert rep["budget"]["spent_queries"] == 0 and teacher.budget.reserved_queries == 0
    assert len(teacher.cache) == 0  # failures are not cached: a rerun tries again


def test_rate_limits_are_retried(home, serve):
    srv = serve(faults=FaultInjector(0.5, ("429",), seed=1))
    teacher = teacher_for(srv, cfg={"max_retries": 20})
    out = teacher.generate(prompts(20))
    assert all(r.ok for r in out)
    rep = teacher.report()
    assert rep["rate_limited"] == srv.stats.as_dict()["counts"]["fault_429"] == rep["retried"] > 0


def test_budget_is_never_exceeded_under_concurrency_and_retries(home, serve):
    srv = serve(faults=FaultInjector(0.3, ("500", "malformed"), seed=5))
    teacher = teacher_for(srv, cfg={"concurrency": 32}, budget={"max_queries": 40})
    out = teacher.generate(prompts(200))
    rep = teacher.report()
    assert srv.stats.as_dict()["counts"]["ok"] == rep["paid"] == 40
    assert sum(r.ok for r in out) == 40
    assert rep["skipped"] == 200 - 40 - rep["failed"]
    assert rep["budget"]["spent_queries"] == 40 and teacher.budget.reserved_queries == 0
    assert sum(r.meta["cost"] for r in out) == 40


def test_budget_smaller_than_one_call_sends_nothing(home, serve):
    srv = serve()
    with pytest.raises(BudgetError, match="budget.max_queries=0 is smaller than one call to teacher openai:echo"):
        teacher_for(srv, budget={"max_queries": 0}).generate(prompts(3))
    assert srv.stats.as_dict()["counts"].get("received", 0) == 0


def test_wrong_api_key_is_one_line_naming_the_server_not_the_key(home, serve, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    srv = serve(api_key="the-right-key-123")
    monkeypatch.setenv("PTLAB_TEST_KEY", KEY)
    teacher = teacher_for(srv, budget={"max_queries": 3})
    with pytest.raises(AuthError) as err:
        teacher.generate(prompts(5))
    assert teacher.budget.reserved_queries == 0 and teacher.budget.spent_queries == 0  # all given back
    msg = str(err.value)
    assert msg == f"teacher server {srv.url} rejected the key in $PTLAB_TEST_KEY (HTTP 401)"
    assert KEY not in caplog.text
    monkeypatch.delenv("PTLAB_TEST_KEY")
    with pytest.raises(AuthError, match=r"rejected no API key \(\$PTLAB_TEST_KEY is unset\) \(HTTP 401\)"):
        teacher_for(srv).generate(prompts(1))


def test_api_key_never_reaches_cache_report_or_logs(home, serve, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PTLAB_TEST_KEY", KEY)
    srv = serve(api_key=KEY, faults=FaultInjector(0.3, ("500", "malformed"), seed=2))
    teacher = teacher_for(srv)
    teacher.generate(prompts(30))
    assert teacher.report()["paid"] == 30
    blob = b"".join(p.read_bytes() for p in (home / "teacher").iterdir())
    assert KEY.encode() not in blob
    assert KEY not in repr(teacher.inner) and KEY not in str(teacher.report()) and KEY not in caplog.text


def test_unreachable_server_and_unknown_model_are_clear_errors(home, serve):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    teacher = make_teacher({"backend": "openai", "model": "m", "base_url": url, "max_retries": 1, "backoff_s": 0.01})
    with pytest.raises(TeacherError, match=rf"^cannot reach teacher server {url}: ConnectError"):
        teacher.generate(prompts(2))
    srv = serve()
    with pytest.raises(TeacherError, match=rf"teacher server {srv.url} answered HTTP 404 .*no model 'nope'"):
        make_teacher({"backend": "openai", "model": "nope", "base_url": srv.url}).generate(prompts(2))


def test_missing_required_key_names_the_variable(home, monkeypatch):
    monkeypatch.delenv("PTLAB_TEST_KEY", raising=False)
    from ptlab.errors import ConfigError

    with pytest.raises(ConfigError, match="environment variable PTLAB_TEST_KEY is not set"):
        make_teacher({"backend": "openai", "model": "m", "api_key_env": "PTLAB_TEST_KEY", "api_key_required": True})


def test_generate_works_inside_a_running_event_loop(home, serve):
    import asyncio

    srv = serve()
    teacher = teacher_for(srv)

    async def main():
        return teacher.generate(prompts(3))

    assert [r.text for r in asyncio.run(main())] == [f"echo: q number {i}" for i in range(3)]


def test_token_budget_holds_under_concurrency(home, serve):
    from ptlab.synth.budget import token_upper_bound

    srv = serve()
    reqs = [ChatRequest.user(f"tell me about item {i}", max_tokens=8) for i in range(100)]
    bound = token_upper_bound(reqs[0])
    teacher = teacher_for(srv, cfg={"concurrency": 32}, budget={"max_tokens": 5 * bound})
    out = teacher.generate(reqs)
    rep = teacher.report()
    paid = [r for r in out if r.ok]
    # echo usage: 5 prompt words + 6 completion words, far under the reserved bound: more than 5 fit
    assert rep["budget"]["spent_tokens"] == 11 * len(paid) <= 5 * bound
    assert srv.stats.as_dict()["counts"]["ok"] == rep["paid"] == len(paid) > 5
    assert rep["skipped"] == 100 - len(paid) > 0
