"""The teacher budget as a promise (issue 15), each measured flaw against the local fault-injecting server.

1. kill -9 + restart of `ptlab synth` never pays past `budget.max_queries` (a durable ledger);
2. processes sharing a reply cache pay each distinct request once (in-flight claims);
3. a strict budget counts attempts the server finished after the client gave up;
4. the token budget holds on CJK and emoji prompts (a UTF-8 byte bound);
5. a second server under the same model name is not served the first one's replies;
6. a run in which the calls fail exits 1 and writes no dataset.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import yaml

from ptlab.fingerprint import fingerprint
from ptlab.synth import (
    BUDGET_SPENT,
    Budget,
    BudgetError,
    ChatReply,
    ChatRequest,
    Ledger,
    MeteredTeacher,
    ReplyCache,
    RunFailed,
    make_teacher,
)
from ptlab.synth.budget import prompt_bound, token_upper_bound
from ptlab.synth.cache import COLUMNS, cache_key, normal_server
from ptlab.synth.claims import Claims
from ptlab.synth.owners import me
from ptlab.synth.serve import CannedResponder, FaultInjector
from ptlab.synth.strategies import Seed, StrategyConfig, run_strategy

from .conftest import cached_rows, kill_after, synth_job


def openai_cfg(srv, **kw) -> dict:
    return {"backend": "openai", "model": "echo", "base_url": srv.url, "api_key_env": None, "concurrency": 4,
            "timeout_s": 10.0, "max_retries": 4, "backoff_s": 0.01, "backoff_max_s": 0.05, **kw}


def prompts(n: int, tag: str = "q", max_tokens: int = 16) -> list[ChatRequest]:
    return [ChatRequest.user(f"{tag} number {i}", max_tokens=max_tokens) for i in range(n)]


def settled_counts(srv, timeout_s: float = 15.0) -> dict:
    """The server's counts once every request it received has been answered or dropped (late faults sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = srv.stats.as_dict()["counts"]
        answered = sum(v for k, v in counts.items() if k not in ("received", "fault_late"))
        if answered >= counts.get("received", 0) or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def check_invariants(rep: dict) -> None:
    assert rep["requests"] == rep["paid"] + rep["cached"] + rep["deduplicated"] + rep["failed"] + rep["skipped"]
    assert rep["awaited"] <= rep["cached"]


# ---- 1. kill -9 and restart ---------------------------------------------------------------------------
@pytest.mark.parametrize("strict", [False, True])
def test_kill_and_restart_never_pay_past_the_budget(home, serve, tmp_path, strict):
    """Measured before: budget.max_queries 100, killed and restarted: the server served 184."""
    budget, concurrency = 100, 4
    srv = serve(latency_s=0.04)  # ~100 replies/s at concurrency 4: the kill lands mid-run
    cmd, env = synth_job(tmp_path, home, {**openai_cfg(srv, concurrency=concurrency), "send_seed": True},
                         queries=2 * budget, budget={"max_queries": budget, "strict": strict})
    db = home / "teacher" / "replies.sqlite"
    kill_after(cmd, env, db, replies=30)
    kept = cached_rows(db)
    assert 30 <= kept < budget
    time.sleep(0.3)  # requests in flight at the kill finish on the server
    served_first = srv.stats.as_dict()["counts"]["ok"]

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    served = settled_counts(srv)["ok"]
    stats = json.loads((tmp_path / "out" / "synth.json").read_text())["stats"]
    with sqlite3.connect(home / "teacher" / "ledger.sqlite") as con:
        charged = con.execute("SELECT SUM(queries) FROM spending").fetchone()[0]
        runs = con.execute("SELECT generation, completed FROM runs").fetchall()
    assert charged == budget  # both attempts together spent exactly the budget
    assert len(runs) == 1 and runs[0][1] is not None  # one run, marked complete
    assert stats["teacher"]["ledger"]["spent_before"][0] >= kept
    if strict:  # an attempt is on disk before it is sent: in flight at the kill, it still counts
        assert served <= budget, (served, kept)
    else:  # a reply in flight at the kill was never received: like a timeout, it is not counted
        assert served - budget <= served_first - kept <= concurrency, (served, served_first, kept)


# ---- 2. processes sharing a cache -----------------------------------------------------------------------
WORKER = """
import json, sys, time
from pathlib import Path
from ptlab.synth import ChatRequest, make_teacher
url, n, q, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
requests = [ChatRequest.user(f"shared question {i}") for i in range(n)]
cfg = {"backend": "openai", "model": "echo", "base_url": url, "api_key_env": None, "concurrency": 4}
with make_teacher(cfg, budget={"max_queries": q}) as teacher:
    while not go.exists():
        time.sleep(0.002)
    out = teacher.generate(requests)
    print(json.dumps({"ok": sum(r.ok for r in out), **teacher.report()}))
"""


def test_two_processes_with_nested_budgets_pay_each_shared_request_once(home, serve, tmp_path):
    """Measured before: two cells with budgets 100 and 50 run in parallel paid 25 of the shared requests twice."""
    srv = serve(latency_s=0.05)
    go = tmp_path / "go"
    env = {**os.environ, "PTLAB_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, srv.url, str(n), str(n), str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (100, 50)]
    time.sleep(0.5)
    go.touch()  # both start their calls at the same moment (each already imported and opened its cache)
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    big, small = reports
    assert (big["ok"], small["ok"]) == (100, 50)
    server = srv.stats.as_dict()
    assert server["counts"]["ok"] == 100 and max(server["ok_by_body"].values()) == 1, server["counts"]
    assert big["paid"] + small["paid"] == 100 and big["cached"] + small["cached"] == 50
    for rep in reports:
        check_invariants(rep)


class Hooked:
    """A backend that sends through the hooks, one request at a time, and counts what it sends."""

    backend = "count"
    model = "m"

    def __init__(self):
        self.calls = 0

    def generate(self, requests, hooks=None):
        out, pending = [None] * len(requests), list(range(len(requests)))
        while pending:
            later = []
            for i in pending:
                verdict = hooks.admit(i) if hooks is not None else True
                if verdict is None:
                    later.append(i)
                    continue
                if verdict:
                    self.calls += 1
                    out[i] = ChatReply(f"re: {requests[i].messages[-1][1]}", 3, 2, meta={"attempts": 1})
                else:
                    out[i] = ChatReply("", error=BUDGET_SPENT, meta={"attempts": 0})
                if hooks is not None:
                    hooks.done(i, out[i])
            if later:
                time.sleep(0.005)
            pending = later
        return out


def test_claims_wait_for_a_live_holder_and_take_over_a_dead_or_failed_one(home):
    cache = ReplyCache()
    inner = Hooked()
    teacher = MeteredTeacher(inner, cache, Budget(max_queries=5))
    req = ChatRequest.user("shared")
    key = teacher.key(req)
    other = Claims(cache, me())  # another holder (same process, its own token: alive)

    # a live holder that succeeds: we wait, holding no budget, and are served its reply for free
    assert other.claim(key)
    got = []
    waiter = threading.Thread(target=lambda: got.extend(teacher.generate([req])))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and teacher.budget.reserved_queries == 0 and inner.calls == 0
    cache.put(key, "count", "m", req, ChatReply("paid by the other", 4, 4))
    other.release(key)
    waiter.join(timeout=10)
    assert got[0].text == "paid by the other" and got[0].cached and inner.calls == 0
    rep = teacher.report()
    assert (rep["paid"], rep["cached"], rep["awaited"], rep["budget"]["spent_queries"]) == (0, 1, 1, 0)

    # a live holder that fails (releases without a reply): we take over and pay
    req2 = ChatRequest.user("shared 2")
    assert other.claim(teacher.key(req2))
    threading.Timer(0.3, other.release, (teacher.key(req2),)).start()
    assert teacher.generate([req2])[0].text == "re: shared 2" and inner.calls == 1

    # a holder that died (kill -9 leaves its claim behind): taken over at once
    req3 = ChatRequest.user("shared 3")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with sqlite3.connect(cache.path) as con:
        con.execute("INSERT INTO inflight VALUES (?, ?, ?, ?, ?, ?)",
                    (teacher.key(req3), "dead-token", dead.pid, me().host, time.time() - 5, time.time()))
    t0 = time.monotonic()
    assert teacher.generate([req3])[0].text == "re: shared 3" and inner.calls == 2
    assert time.monotonic() - t0 < 5
    with sqlite3.connect(cache.path) as con:
        assert con.execute("SELECT COUNT(*) FROM inflight").fetchone()[0] == 0  # every claim released
    check_invariants(teacher.report())


# ---- 3. strict budgets and requests the server finished too late ------------------------------------------
def test_strict_budget_counts_attempts_the_server_finished_after_the_client_gave_up(home, serve):
    """Measured before: max_queries 20 with timeouts the server completed: 56 served."""
    budget = 20

    def run(strict: bool):
        srv = serve(faults=FaultInjector(0.5, ("late",), delay_s=1.0, seed=7))
        teacher = make_teacher(openai_cfg(srv, timeout_s=0.4, max_retries=3),
                               budget={"max_queries": budget, "strict": strict}, cache=False)
        out = teacher.generate(prompts(40))
        return out, teacher.report(), settled_counts(srv)

    out, rep, counts = run(strict=False)
    assert rep["paid"] == budget == sum(r.ok for r in out)  # replies received: within the budget...
    assert counts["ok"] > budget  # ...but the server served (and a provider would bill) more

    out, rep, counts = run(strict=True)
    assert counts["ok"] <= budget, counts
    assert rep["budget"]["spent_queries"] == rep["paid"] + rep["charged_failures"] <= budget
    assert rep["charged_failures"] >= 1 and rep["timeouts"] >= rep["charged_failures"]
    check_invariants(rep)
    failed_sent = sum(1 for r in out if not r.ok and r.meta.get("attempts", 0) > 0)
    assert rep["attempts"] == rep["paid"] + failed_sent + rep["retried"]
    assert all(r.ok or r.error == BUDGET_SPENT or r.error.startswith("timeouts") for r in out)
    assert any(r.error == BUDGET_SPENT and r.meta["attempts"] > 0 for r in out) or rep["skipped"] > 0


# ---- 4. the token bound on non-ASCII prompts ---------------------------------------------------------------
NON_ASCII = "请用一句话解释光合作用。🌱🌞 Ünïcödé — “{i}” ありがとう 🙂"


def test_token_budget_holds_for_cjk_and_emoji_prompts(home, serve, tiny_dir, one_thread):
    """Measured before: 3,195 tokens spent against max_tokens 3,000 (one token per two characters assumed)."""
    from ptlab.synth.serve import ModelResponder
    from ptlab.synth.teachers.hf import HFTeacher

    srv = serve(responder=ModelResponder(HFTeacher(tiny_dir, batch_size=4), max_batch=4), model="tiny")
    reqs = [ChatRequest.user(NON_ASCII.format(i=i), max_tokens=8) for i in range(30)]

    def run(bound: str):
        teacher = make_teacher({**openai_cfg(srv), "model": "tiny"}, cache=False,
                               budget={"max_tokens": 900, "token_bound": bound})
        out = teacher.generate(reqs)
        paid = [r for r in out if r.ok]
        used = sum(r.prompt_tokens + r.completion_tokens for r in paid)  # as the server reported them
        assert used == teacher.budget.spent_tokens <= 900, bound
        assert any(r.error == BUDGET_SPENT for r in out)  # the budget, not the requests, ran out
        assert all(r.prompt_tokens > len(reqs[0].messages[0][1]) / 2 + 16 for r in paid)  # the old estimate's miss
        return len(paid)

    assert run("bytes") >= 3 and run("calibrated") >= 3


SMOLLM2_TEMPLATE = (  # SmolLM2-135M-Instruct's chat template, as its GGUF file carries it
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_the_byte_bound_covers_the_chat_templates_ptlab_serves():
    """Each special token one token and every other byte at most one: the rendered prompt fits the bound."""
    import jinja2

    from ptlab.models.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS

    specials = [*SPECIAL_TOKENS, "<|im_start|>", "<|im_end|>"]
    requests = [ChatRequest.user(""), ChatRequest.user(NON_ASCII),
                ChatRequest(messages=(("system", "Be brief."), ("user", "hi"), ("assistant", "hello"), ("user", "é")))]
    for template in (CHAT_TEMPLATE, SMOLLM2_TEMPLATE):
        for req in requests:
            text = jinja2.Template(template).render(messages=req.message_dicts(), add_generation_prompt=True)
            for s in specials:
                text = text.replace(s, "\x00")
            assert len(text.encode()) <= prompt_bound(req), (template[:30], req)
    req = ChatRequest.user("日本", max_tokens=5)
    assert token_upper_bound(req) == prompt_bound(req) + 5 >= len("日本".encode()) + 5


def test_calibrated_bounds_learn_from_usage_and_never_pass_the_byte_bound():
    req = ChatRequest.user("x" * 400, max_tokens=10)
    budget = Budget(max_tokens=10_000, token_bound="calibrated")
    assert budget.bound(req) == token_upper_bound(req)  # nothing observed yet: the byte bound
    budget.observe(req, prompt_tokens=prompt_bound(req) // 4)
    assert budget.bound(req) < token_upper_bound(req) / 2
    budget.observe(req, prompt_tokens=prompt_bound(req) * 2)  # a denser prompt than bytes (impossible, but)
    assert budget.bound(req) == token_upper_bound(req)
    assert Budget(max_tokens=10_000).bound(req) == token_upper_bound(req)  # bytes: never calibrated


class NoUsage:
    """A server that reports no token usage at all."""

    def complete(self, request):
        from ptlab.synth.serve.responders import Completion

        return Completion("fine", 0, 0)


def test_a_reply_without_reported_usage_spends_its_bound(home, serve):
    srv = serve(responder=NoUsage())
    reqs = prompts(10)  # one bound for all: "q number 0" .. "q number 9"
    bound = token_upper_bound(reqs[0])
    teacher = make_teacher(openai_cfg(srv), budget={"max_tokens": 3 * bound}, cache=False)
    out = teacher.generate(reqs)
    assert sum(r.ok for r in out) == 3 and teacher.budget.spent_tokens == 3 * bound


# ---- 5. the server is part of the cache key ----------------------------------------------------------------
def test_a_second_server_under_the_same_model_name_gets_its_own_replies(home, serve):
    """Measured before: a second server with the same model name got the first server's replies."""
    first = serve(responder=CannedResponder("from the first server"), model="m")
    second = serve(responder=CannedResponder("from the second server"), model="m")

    def ask(url: str) -> tuple[set, dict]:
        with make_teacher({"backend": "openai", "model": "m", "base_url": url, "api_key_env": None}) as teacher:
            return {r.text for r in teacher.generate(prompts(5))}, teacher.report()

    assert ask(first.url)[0] == {"from the first server"}
    texts, rep = ask(second.url)
    assert texts == {"from the second server"} and (rep["paid"], rep["cached"]) == (5, 0)
    texts, rep = ask(first.url + "/")  # the same server, spelled differently
    assert texts == {"from the first server"} and (rep["paid"], rep["cached"]) == (0, 5)
    assert first.stats.as_dict()["counts"]["ok"] == second.stats.as_dict()["counts"]["ok"] == 5


def test_server_urls_are_normalised_without_credentials_or_query():
    assert normal_server("HTTP://User:Secret@Example.COM:80/v1/?key=abc#x") == "http://example.com/v1"
    assert normal_server("https://api.example.com:443/v1") == "https://api.example.com/v1"
    assert normal_server("https://api.example.com:8443/v1//") == "https://api.example.com:8443/v1"
    assert normal_server("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert normal_server(None) == normal_server("") == ""
    req = ChatRequest.user("q")
    assert cache_key("openai", "m", req, "http://a/v1") != cache_key("openai", "m", req, "http://b/v1")


def test_a_cache_file_with_version_1_keys_keeps_working(tmp_path, capsys):
    path = tmp_path / "replies.sqlite"
    req = ChatRequest.user("q")
    old_key = fingerprint("teacher-reply-v1", "openai", "m", req.key_fields(), length=32)
    with sqlite3.connect(path) as con:  # the v1 file: its one table, no in-flight claims
        con.execute(f"CREATE TABLE replies ({', '.join(COLUMNS)})")
        con.execute("INSERT INTO replies VALUES (?, 'openai', 'm', '{}', 'old', 1, 1, '{}', 0)", (old_key,))
    cache = ReplyCache(path)
    new_key = cache_key("openai", "m", req, "http://a/v1")
    assert cache.get(new_key) is None  # an old row never matches a new key
    cache.put(new_key, "openai", "m", req, ChatReply("new", 1, 1), "http://a/v1")
    assert cache.get(new_key).text == "new" and len(cache) == 2
    assert capsys.readouterr().err == "" and not list(tmp_path.glob("*.corrupt-*"))  # not moved aside


# ---- 6. failed runs ---------------------------------------------------------------------------------------
def test_a_run_where_every_call_fails_exits_1_and_writes_no_dataset(home, serve, tmp_path, ptlab):
    srv = serve(faults=FaultInjector(1.0, ("500",)))
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?"}) + "\n" for i in range(3)))
    cfg = {"teacher": openai_cfg(srv, max_retries=1), "strategy": {"queries": 6},
           "seeds": {"source": "jsonl", "path": str(seeds), "n": 3}, "output": str(tmp_path / "out")}
    (tmp_path / "synth.yaml").write_text(yaml.safe_dump(cfg))
    done = ptlab("synth", str(tmp_path / "synth.yaml"), env={"PTLAB_HOME": str(home)})
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: teacher openai:echo: 6 of 6 requests sent got no reply"), line
    assert "no dataset written" in line and "HTTP 500" in line
    assert not (tmp_path / "out").exists()


def test_a_failed_share_above_the_limit_fails_the_strategy(home, serve):
    srv = serve(faults=FaultInjector(0.6, ("500",), seed=7))  # its draws: 16 faults in the first 20, 12 in the next
    seeds = [Seed(f"s{i}", f"What is {i} + 1?") for i in range(20)]

    def build(share: float):
        teacher = make_teacher(openai_cfg(srv, max_retries=0), cache=False)
        return run_strategy(teacher, seeds, StrategyConfig(rounds=1, max_failed_share=share))

    with pytest.raises(RunFailed, match=r"16 of 20 requests sent got no reply \(strategy.max_failed_share=0.5\)"):
        build(0.5)
    result = build(0.9)
    assert len(result.rows) == 8 and result.stats["teacher"]["failed"] == 12


# ---- the ledger itself --------------------------------------------------------------------------------------
HOLDER = """
import sys
from ptlab.synth.ledger import Ledger
from ptlab.synth.owners import me
run = Ledger(sys.argv[1]).open_run("cell", me())
run.charge(None, "k", 7)
print("ready", flush=True)
sys.stdin.readline()
"""


def test_ledger_runs_have_one_driver_resume_and_start_afresh_when_complete(tmp_path, capsys):
    path = tmp_path / "ledger.sqlite"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        refused = Ledger(path)
        with pytest.raises(BudgetError, match=rf"run cell is being run by process {holder.pid}"):
            refused.open_run("cell", me())
        refused.close()
    finally:
        holder.kill()
        holder.wait()
    ledger = Ledger(path)
    run = ledger.open_run("cell", me())  # its driver died: this process resumes the run
    assert (run.generation, run.spent_queries, run.spent_tokens) == (1, 1, 7)
    row = run.sent("k2", 50)
    assert ledger.spent("cell") == (2, 57)
    run.drop(row)
    run.complete()
    again = ledger.open_run("cell", me())
    assert (again.generation, again.spent_queries) == (2, 0)  # a finished run starts a new generation
    ledger.close()
    path.write_bytes(b"not a ledger" * 100)
    Ledger(path).close()
    err = capsys.readouterr().err
    assert "corrupt teacher ledger (not an SQLite database)" in err
    asides = [p for p in tmp_path.glob("ledger.sqlite.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert [p.read_bytes() for p in asides] == [b"not a ledger" * 100]


def test_budget_run_id_resumes_spending_across_teachers(home, serve):
    srv = serve()
    budget = {"max_queries": 5, "run_id": "resumed"}
    with make_teacher(openai_cfg(srv), budget=budget) as teacher:
        assert sum(r.ok for r in teacher.generate(prompts(3, "a"))) == 3
    with make_teacher(openai_cfg(srv), budget=budget) as teacher:  # a restart of the same run: 2 left
        out = teacher.generate(prompts(4, "b"))
        assert sum(r.ok for r in out) == 2 and sum(r.error == BUDGET_SPENT for r in out) == 2
        assert teacher.report()["budget"]["spent_queries"] == 5
        teacher.complete_run()
    with make_teacher(openai_cfg(srv), budget=budget) as teacher:  # complete: a new generation
        assert sum(r.ok for r in teacher.generate(prompts(4, "c"))) == 4
    assert srv.stats.as_dict()["counts"]["ok"] == 9


def test_replies_fetched_unseeded_are_never_served_for_seeded_requests(home, serve):
    """A server that seeds its sampler from the body returns one sample for every sample index; with
    `send_seed` each index is its own sample, so the two kinds of replies never share a cache key."""
    srv = serve(responder=CannedResponder("a sample"), model="m")
    cfg = {"backend": "openai", "model": "m", "base_url": srv.url, "api_key_env": None}
    requests = [ChatRequest.user("one question", temperature=0.8, sample_index=k) for k in range(3)]
    for send_seed, paid in ((False, 3), (True, 3), (True, 0)):
        with make_teacher({**cfg, "send_seed": send_seed}) as teacher:
            teacher.generate(requests)
            assert teacher.report()["paid"] == paid
