"""`ptlab serve` against the official `openai` client: streaming as generated, n choices, /v1/completions,
and one bad request in a micro-batch failing alone."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from ptlab.synth.serve import EchoResponder, ModelResponder
from ptlab.synth.serve.responders import Completion, InlineResponder
from ptlab.synth.teachers.base import ChatReply

KEY = "sk-api-test-42"
USER = [{"role": "user", "content": "one two three four"}]


def client_for(srv, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url, api_key=key, max_retries=0, timeout=20)


class RecordingEcho(EchoResponder):
    """Echo that records each request it answered (sample indices tell choices apart)."""

    def __init__(self, token_delay_s: float = 0.0):
        super().__init__(token_delay_s)
        self.requests = []

    def complete(self, request, on_text=None):
        self.requests.append(request)
        return super().complete(request, on_text)


class GatedResponder(InlineResponder):
    """Generates "Hello", then waits for the test to open the gate before " world": the client can only
    see "Hello" before the gate opens if the server sent it as soon as it was generated."""

    def __init__(self):
        self.gate = threading.Event()
        self.gate_timed_out = False

    def reply_words(self, request):
        return ["Hello", "world"]

    def complete(self, request, on_text=None):
        if on_text is not None:
            on_text("Hello")
        self.gate_timed_out = not self.gate.wait(10)
        if on_text is not None:
            on_text(" world")
        return Completion("Hello world", 4, 2)


def test_stream_sends_text_as_it_is_generated(serve):
    responder = GatedResponder()
    srv = serve(responder=responder, api_key=KEY)
    stream = client_for(srv).chat.completions.create(model="echo", messages=USER, stream=True,
                                                     stream_options={"include_usage": True})
    chunks = iter(stream)
    pieces = []
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            break
    assert pieces == ["Hello"] and not responder.gate.is_set()  # arrived while generation was still running
    responder.gate.set()
    rest = list(chunks)
    pieces += [c.choices[0].delta.content for c in rest if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == "Hello world" and not responder.gate_timed_out
    assert [c.choices[0].finish_reason for c in rest if c.choices][-1] == "stop"
    assert rest[-1].usage.completion_tokens == 2 and rest[-1].usage.prompt_tokens == 4


def test_slow_generator_streams_first_token_long_before_the_last(serve):
    srv = serve(responder=EchoResponder(token_delay_s=0.1), api_key=KEY)
    started = time.monotonic()
    arrivals = []
    for chunk in client_for(srv).chat.completions.create(model="echo", messages=USER, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic() - started, chunk.choices[0].delta.content))
    assert "".join(p for _, p in arrivals) == "echo: one two three four"
    assert len(arrivals) == 5 and arrivals[-1][0] - arrivals[0][0] > 0.3  # 4 more tokens, 0.1 s each


def test_n_choices_have_distinct_sample_indices(serve):
    responder = RecordingEcho()
    srv = serve(responder=responder, api_key=KEY)
    r = client_for(srv).chat.completions.create(model="echo", messages=USER, n=3, seed=7, temperature=0.8)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert {c.message.content for c in r.choices} == {"echo: one two three four"}
    assert sorted(q.sample_index for q in responder.requests) == [7, 8, 9]
    assert {q.temperature for q in responder.requests} == {0.8}
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (4, 15)  # the prompt counts once


def test_n_choices_stream_with_their_indices(serve):
    srv = serve(api_key=KEY)
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    stream = client_for(srv).chat.completions.create(model="echo", messages=USER, n=2, max_tokens=3, stream=True,
                                                     stream_options={"include_usage": True})
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert texts == {0: "echo: one two", 1: "echo: one two"} and finishes == {0: "length", 1: "length"}
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 6)


def test_stop_strings_cut_streamed_and_plain_replies_alike(serve):
    srv = serve(api_key=KEY)
    client = client_for(srv)
    plain = client.chat.completions.create(model="echo", messages=USER, stop=["thr", "four"])
    streamed = "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(model="echo", messages=USER, stop=["thr", "four"], stream=True)
                       if c.choices)
    assert plain.choices[0].message.content == streamed == "echo: one two "
    assert plain.choices[0].finish_reason == "stop"


def test_completions_endpoint_with_prompts_and_n(serve):
    srv = serve(api_key=KEY)
    client = client_for(srv)
    r = client.completions.create(model="echo", prompt=["a b", "c"], n=2, max_tokens=5)
    assert r.object == "text_completion"
    assert [(c.index, c.text) for c in r.choices] == [(0, "echo: a b"), (1, "echo: a b"), (2, "echo: c"),
                                                      (3, "echo: c")]
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (3, 10)
    long = client.completions.create(model="echo", prompt=" ".join(["w"] * 30))
    assert long.choices[0].finish_reason == "length" and long.usage.completion_tokens == 16  # OpenAI's default
    texts: dict[int, str] = {}
    for chunk in client.completions.create(model="echo", prompt=["x y z", "q"], stream=True):
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
    assert texts == {0: "echo: x y z", 1: "echo: q"}


def test_openai_client_errors(serve):
    srv = serve(api_key=KEY)
    with pytest.raises(openai.AuthenticationError):
        client_for(srv, "sk-wrong").chat.completions.create(model="echo", messages=USER)
    with pytest.raises(openai.BadRequestError) as err:
        client_for(srv).chat.completions.create(model="echo", messages=USER, logprobs=True)
    assert err.value.param == "logprobs" and err.value.code == "unsupported_parameter"
    with pytest.raises(openai.NotFoundError):
        client_for(srv).chat.completions.create(model="gpt-nope", messages=USER)
    assert [m.id for m in client_for(srv).models.list()] == ["echo"]


class FlakyTeacher:
    """A model that fails any batch holding a 'poison' prompt — by raising, or with error replies as HFTeacher does."""

    backend, model = "fake", "fake"

    def __init__(self, mode: str):
        self.mode = mode
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def generate(self, requests):
        prompts = [r.messages[-1][1] for r in requests]
        with self.lock:
            self.batches.append(prompts)
        if any("poison" in p for p in prompts):
            if self.mode == "raise":
                raise RuntimeError("CUDA error: device-side assert triggered")
            return [ChatReply("", error="generation failed: boom") for _ in requests]
        return [ChatReply(f"ok {p}", 2, 2, meta={"finish_reason": "stop"}) for p in prompts]


@pytest.mark.parametrize("mode", ["raise", "error_replies"])
def test_one_bad_request_fails_alone_in_its_batch(serve, mode):
    teacher = FlakyTeacher(mode)
    srv = serve(responder=ModelResponder(teacher, max_batch=16, wait_s=0.3))
    prompts = [f"prompt {i}" for i in range(7)] + ["poison pill"]

    def send(body):
        with httpx.Client(base_url=srv.url, timeout=20) as client:
            return client.post("/chat/completions", json=body)

    bodies = [{"messages": [{"role": "user", "content": p}]} for p in prompts]
    bodies.append({"messages": [{"role": "user", "content": "invalid"}], "temperature": 7})
    with ThreadPoolExecutor(len(bodies)) as pool:
        replies = list(pool.map(send, bodies))
    for p, r in zip(prompts[:7], replies):
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == f"ok {p}"
    assert replies[7].status_code == 500 and replies[7].json()["error"]["type"] == "server_error"
    assert replies[8].status_code == 400 and replies[8].json()["error"]["param"] == "temperature"
    first = max(teacher.batches, key=len)
    assert len(first) > 1 and "poison pill" in first  # the poison really was batched with others
    assert ["poison pill"] in teacher.batches  # and retried alone
    assert not any("invalid" in p for batch in teacher.batches for p in batch)  # never queued
    assert srv.stats.as_dict()["counts"]["model_error"] == 1


class StreamingFlakyTeacher(FlakyTeacher):
    """Streams "Hello wor" for every request, then fails the batch if it holds a poison prompt."""

    def generate(self, requests, on_text=None):
        prompts = [r.messages[-1][1] for r in requests]
        with self.lock:
            self.batches.append(prompts)
        for i in range(len(requests)):
            on_text(i, "Hello")
            on_text(i, " wor")
        if any("poison" in p for p in prompts):
            raise RuntimeError("out of memory")
        for i in range(len(requests)):
            on_text(i, "ld")
        return [ChatReply("Hello world", 2, 2, meta={"finish_reason": "stop"}) for _ in prompts]


def test_a_streamed_request_retried_after_a_failed_batch_is_not_sent_twice(serve):
    teacher = StreamingFlakyTeacher("raise")
    srv = serve(responder=ModelResponder(teacher, max_batch=8, wait_s=0.3))

    def stream(prompt: str) -> list[dict]:
        body = {"messages": [{"role": "user", "content": prompt}], "stream": True}
        with httpx.Client(base_url=srv.url, timeout=20) as client, \
                client.stream("POST", "/chat/completions", json=body) as r:
            return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]

    prompts = ["a", "b", "c", "poison"]
    with ThreadPoolExecutor(len(prompts)) as pool:
        events = list(pool.map(stream, prompts))
    for evs in events[:3]:
        assert "".join(e["choices"][0]["delta"].get("content", "") for e in evs if e.get("choices")) == "Hello world"
    assert events[3][-1]["error"]["type"] == "server_error" and "out of memory" in events[3][-1]["error"]["message"]
    assert sorted(max(teacher.batches, key=len)) == sorted(prompts) and ["poison"] in teacher.batches


def test_a_real_model_streams_token_by_token(home, serve, tiny_dir, one_thread):
    from ptlab.synth.teachers.hf import HFTeacher

    srv = serve(responder=ModelResponder(HFTeacher(tiny_dir, batch_size=4), max_batch=4), model="tiny")
    client = client_for(srv)
    ask = {"model": "tiny", "messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 12,
           "temperature": 0}
    plain = client.chat.completions.create(**ask)
    pieces = [c.choices[0].delta.content for c in client.chat.completions.create(**ask, stream=True)
              if c.choices and c.choices[0].delta.content]
    assert plain.usage.completion_tokens > 2 and len(pieces) > 2
    assert "".join(pieces) == plain.choices[0].message.content
    texts: dict[int, list[str]] = {0: [], 1: []}  # two rows of one batch, each streamed to its own choice
    for chunk in client.chat.completions.create(**ask, n=2, stream=True):
        for c in chunk.choices:
            texts[c.index].append(c.delta.content or "")
    assert ["".join(t) for t in texts.values()] == [plain.choices[0].message.content] * 2
    assert all(len([p for p in t if p]) > 2 for t in texts.values())
