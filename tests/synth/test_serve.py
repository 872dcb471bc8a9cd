"""`ptlab serve`: the OpenAI wire format, the CLI, a real model behind it, fault injection."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from ptlab.synth import ChatRequest, make_teacher
from ptlab.synth.serve import CannedResponder, FaultInjector, ModelResponder
from ptlab.synth.teachers.hf import HFTeacher


def test_models_and_chat_completion_wire_format(serve):
    srv = serve(model="echo-model")
    with httpx.Client(base_url=srv.url) as client:
        models = client.get("/models").json()
        assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["echo-model"]
        body = {"model": "echo-model", "messages": [{"role": "system", "content": "be brief"},
                                                    {"role": "user", "content": "one two three"}], "max_tokens": 3}
        r = client.post("/chat/completions", json=body).json()
        assert r["object"] == "chat.completion" and r["model"] == "echo-model"
        assert r["choices"][0]["message"] == {"role": "assistant", "content": "echo: one two"}
        assert r["choices"][0]["finish_reason"] == "length"
        assert r["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        bad = client.post("/chat/completions", json={"messages": []})
        assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]
        unknown = client.post("/chat/completions", json={"model": "other", "messages": body["messages"]})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
        assert client.post("/chat/completions", content=b"{not json").status_code == 400
    assert srv.stats.as_dict()["counts"] == {"received": 4, "ok": 1, "bad_request": 2, "unknown_model": 1}


def test_fault_injector_rate_and_kinds():
    inj = FaultInjector(0.2, ("500", "malformed"), seed=0)
    draws = [inj.draw()[0] for _ in range(5000)]
    share = sum(d is not None for d in draws) / len(draws)
    assert 0.18 < share < 0.22
    assert {d for d in draws if d} == {"500", "malformed"}
    with pytest.raises(ValueError, match="fault kinds must be among"):
        FaultInjector(0.1, ("teapot",))


def test_canned_server_replies_the_same_text(serve):
    srv = serve(responder=CannedResponder("x y z"), model="canned")
    teacher = make_teacher({"backend": "openai", "model": "canned", "base_url": srv.url}, cache=False)
    out = teacher.generate([ChatRequest.user(f"q{i}") for i in range(5)])
    assert {r.text for r in out} == {"x y z"} and teacher.report()["completion_tokens"] == 15


def test_cli_serves_and_rejects_bad_options(tmp_path):
    env = {**os.environ, "PTLAB_HOME": str(tmp_path), "SERVE_KEY": "k-123456"}
    bad = subprocess.run([sys.executable, "-m", "ptlab.synth", "serve", "echo", "--echo", "--fault-kinds", "teapot"],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --fault-rate/--fault-kinds: fault kinds must be among 500, 429, timeout, malformed, late (got teapot)"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ptlab.synth", "serve", "echo", "--echo", "--port", "0", "--api-key-env", "SERVE_KEY"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ptlab serve: echo at http://127.0.0.1:"), proc.stderr.read()
        url = line.split(" at ")[1].strip()
        ok = httpx.post(f"{url}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                        headers={"Authorization": "Bearer k-123456"}, timeout=10)
        assert ok.json()["choices"][0]["message"]["content"] == "echo: hi"
        denied = httpx.post(f"{url}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                            timeout=10)
        assert denied.status_code == 401
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_exposure_warning_only_off_loopback_without_a_key():
    from ptlab.synth.serve.auth import exposure_warning

    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert exposure_warning(host, None) is None, host
    for host in ("0.0.0.0", "::", "", "10.0.0.5", "myhost.example"):
        warning = exposure_warning(host, None)
        assert warning and "\n" not in warning and "without an API key" in warning, host
        assert exposure_warning(host, "k") is None


def test_cli_warns_on_a_public_address_without_a_key_and_checks_limits(tmp_path):
    env = {**os.environ, "PTLAB_HOME": str(tmp_path)}
    run = lambda *args: subprocess.run([sys.executable, "-m", "ptlab.synth", "serve", "echo", "--echo", *args],  # noqa: E731
                                       env=env, capture_output=True, text=True, timeout=60, check=False)
    exposed = run("--host", "192.0.2.1", "--port", "0")  # TEST-NET-1: not this machine's, so binding fails at once
    lines = exposed.stderr.strip().splitlines()
    assert exposed.returncode == 2 and len(lines) == 2
    assert lines[0] == ("ptlab serve: warning: listening on 192.0.2.1 without an API key: anyone who can reach it "
                        "can use the model (set --api-key-env)")
    assert lines[1].startswith("error: ptlab serve: cannot listen on 192.0.2.1:0")
    zero = run("--max-connections", "0")
    assert zero.returncode == 2 and zero.stderr.strip() == "error: --max-connections must be positive (got 0)"


def test_hf_teacher_batches_reproducibly_and_is_metered(home, tiny_dir, one_thread):
    teacher = make_teacher({"backend": "hf", "model": tiny_dir, "batch_size": 3}, budget={"max_queries": 6})
    greedy = [ChatRequest.user(f"What is {i} plus {i}?", max_tokens=6) for i in range(4)]
    sampled = [ChatRequest.user("Say something.", temperature=1.0, max_tokens=6, sample_index=k) for k in range(3)]
    out = teacher.generate(greedy + sampled)
    rep = teacher.report()
    assert (rep["paid"], rep["skipped"]) == (6, 1)  # a budget of 6 queries: the 7th is not generated
    ok = [r for r in out if r.ok]
    assert all(0 < r.completion_tokens <= 6 and r.prompt_tokens > 5 for r in ok)
    assert all(r.meta["finish_reason"] in ("stop", "length") for r in ok)
    bare = HFTeacher(tiny_dir, batch_size=2)
    first, second = bare.generate(greedy + sampled), bare.generate(greedy + sampled)
    assert [r.text for r in first] == [r.text for r in second]  # seeded per batch
    assert len({r.text for r in first[4:]}) > 1  # sample_index gives different samples
    again = teacher.generate(greedy + sampled)
    assert sum(r.cached for r in again) == 6 and teacher.report()["budget"]["spent_queries"] == 6


def test_serve_a_real_model_batched_through_the_openai_teacher(home, serve, tiny_dir, one_thread):
    hf = HFTeacher(tiny_dir, batch_size=4)
    srv = serve(responder=ModelResponder(hf, max_batch=4), model="tiny")
    teacher = make_teacher({"backend": "openai", "model": "tiny", "base_url": srv.url, "concurrency": 4})
    reqs = [ChatRequest.user(f"Question {i}?", max_tokens=5) for i in range(8)]
    out = teacher.generate(reqs)
    assert all(r.ok and 0 < r.completion_tokens <= 5 for r in out)
    direct = HFTeacher(tiny_dir, batch_size=1).generate(reqs[:1])[0]
    served_alone = make_teacher({"backend": "openai", "model": "tiny", "base_url": srv.url, "concurrency": 1},
                                cache=False).generate(reqs[:1])[0]
    assert served_alone.text == direct.text and served_alone.completion_tokens == direct.completion_tokens


def test_stream_true_answers_with_server_sent_events(serve):
    import json

    srv = serve(model="echo")
    body = {"model": "echo", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "stream me"}]}
    with httpx.Client(base_url=srv.url) as client, client.stream("POST", "/chat/completions", json=body) as r:
        assert r.headers["content-type"] == "text/event-stream"
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "echo:"}, {"content": " stream"},
                      {"content": " me"}, {}]  # a chunk per generated token
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]] == [None, None, None, None, "stop"]
    assert events[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
