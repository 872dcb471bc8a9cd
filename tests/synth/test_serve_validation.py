"""`ptlab serve` validates every field before queueing: a 400 with an OpenAI-style error naming the field.

A counting responder checks the other half of the promise: nothing invalid reaches the model.
"""

from __future__ import annotations

import httpx
import pytest

from ptlab.synth.serve import EchoResponder, OpenAIServer

MSGS = [{"role": "user", "content": "hi"}]


class CountingEcho(EchoResponder):
    def __init__(self):
        super().__init__()
        self.seen = 0

    def complete(self, request, on_text=None):
        self.seen += 1
        return super().complete(request, on_text)


@pytest.fixture(scope="module")
def shared():
    """One server and client for the module (a hundred cases; starting each costs more than the case)."""
    responder = CountingEcho()
    srv = OpenAIServer(responder, "echo").start_background()
    with httpx.Client(base_url=srv.url) as client:
        yield client, responder, srv
    srv.stop()


@pytest.fixture
def echo(shared):
    """The shared server with its counters reset, so each case checks only its own effect."""
    client, responder, srv = shared
    responder.seen = 0
    with srv.stats.lock:
        srv.stats.counts.clear()
    return shared


def chat(**fields) -> dict:
    return {"messages": MSGS, **fields}


CHAT_CASES = [
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [1]}, "messages[0]"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": 1, "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, "messages[0].content[0].text"),
    ({"messages": [MSGS[0], {"role": "assistant", "content": "", "tool_calls": []}]}, "messages[1].tool_calls"),
    ({"messages": [{"role": "user", "content": "hi", "name": 7}]}, "messages[0].name"),
    (chat(max_tokens=0), "max_tokens"),
    (chat(max_tokens=-1), "max_tokens"),
    (chat(max_tokens=4097), "max_tokens"),
    (chat(max_tokens="5"), "max_tokens"),
    (chat(max_tokens=1.5), "max_tokens"),
    (chat(max_tokens=True), "max_tokens"),
    (chat(max_completion_tokens=0), "max_completion_tokens"),
    (chat(max_tokens=5, max_completion_tokens=6), "max_completion_tokens"),
    (chat(temperature=-0.1), "temperature"),
    (chat(temperature=2.5), "temperature"),
    (chat(temperature="1"), "temperature"),
    (chat(temperature=True), "temperature"),
    (chat(top_p=0), "top_p"),
    (chat(top_p=1.5), "top_p"),
    (chat(top_p=False), "top_p"),
    (chat(stop=5), "stop"),
    (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    (chat(stop=["x" * 300]), "stop"),
    (chat(stop=[""]), "stop"),
    (chat(stop=[1]), "stop"),
    (chat(n=0), "n"),
    (chat(n=17), "n"),
    (chat(n=True), "n"),
    (chat(n=2.0), "n"),
    (chat(seed="1"), "seed"),
    (chat(seed=1.5), "seed"),
    (chat(seed=True), "seed"),
    (chat(seed=2**64), "seed"),
    (chat(stream="yes"), "stream"),
    (chat(stream=1), "stream"),
    (chat(stream=True, stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
    (chat(stream=True, stream_options={"other": 1}), "stream_options"),
    (chat(model=5), "model"),
    # would change the reply, not implemented: refused, never ignored
    (chat(logprobs=True), "logprobs"),
    (chat(top_logprobs=2), "top_logprobs"),
    (chat(tools=[{"type": "function", "function": {"name": "f"}}]), "tools"),
    (chat(tool_choice="auto"), "tool_choice"),
    (chat(response_format={"type": "json_object"}), "response_format"),
    (chat(logit_bias={"50256": -100}), "logit_bias"),
    (chat(presence_penalty=0.5), "presence_penalty"),
    (chat(frequency_penalty=1), "frequency_penalty"),
    (chat(audio={"voice": "x"}), "audio"),
    (chat(reasoning_effort="high"), "reasoning_effort"),
    (chat(frobnicate=1), "frobnicate"),
]


@pytest.mark.parametrize("body, param", CHAT_CASES, ids=[p + f"-{i}" for i, (_, p) in enumerate(CHAT_CASES)])
def test_each_invalid_chat_field_is_a_400_naming_it(echo, body, param):
    client, responder, _ = echo
    r = client.post("/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["code"]
    assert param.split(".")[0].split("[")[0] in err["message"]
    assert responder.seen == 0


TEXT_CASES = [
    ({}, "prompt"),
    ({"prompt": []}, "prompt"),
    ({"prompt": [1, 2, 3]}, "prompt"),  # token ids
    ({"prompt": ["a", 2]}, "prompt"),
    ({"prompt": ["p"] * 17}, "prompt"),
    ({"prompt": ["a", "b"], "n": 9}, "n"),
    ({"prompt": "a", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "a", "max_completion_tokens": 5}, "max_completion_tokens"),  # a chat-only field
    ({"prompt": "a", "echo": True}, "echo"),
    ({"prompt": "a", "suffix": "end"}, "suffix"),
    ({"prompt": "a", "best_of": 2}, "best_of"),
    ({"prompt": "a", "logprobs": 1}, "logprobs"),
    ({"prompt": "a", "messages": MSGS}, "messages"),
]


@pytest.mark.parametrize("body, param", TEXT_CASES, ids=[p + f"-{i}" for i, (_, p) in enumerate(TEXT_CASES)])
def test_each_invalid_completions_field_is_a_400_naming_it(echo, body, param):
    client, responder, _ = echo
    r = client.post("/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    assert responder.seen == 0


RAW_CASES = [
    (b"{not json", "invalid_json"),
    (b"", "invalid_json"),
    (b"[1, 2]", "invalid_json"),
    (b'"a string"', "invalid_json"),
    (b"null", "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', "invalid_encoding"),
    (b'\xef\xbb\xbf{"messages": []}', "invalid_json"),  # a byte-order mark
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": Infinity}', "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "invalid_value"),  # an unpaired surrogate
    (b'{"user": ' + b"[" * 70 + b"]" * 70 + b', "messages": []}', "too_deep"),
    (b"[" * 5000 + b"]" * 5000, "too_deep"),  # Python's json would raise RecursionError
    (b'{"a": ' * 3000 + b"1" + b"}" * 3000, "too_deep"),
]


@pytest.mark.parametrize("raw, code", RAW_CASES, ids=[f"{c}-{i}" for i, (_, c) in enumerate(RAW_CASES)])
def test_malformed_bodies_are_a_400_with_a_json_error(echo, raw, code):
    client, responder, srv = echo
    r = client.post("/chat/completions", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    assert client.get("/models").status_code == 200  # the connection and the server are fine
    assert responder.seen == 0 and srv.stats.as_dict()["counts"]["bad_request"] == 1


def test_nesting_at_the_limit_is_accepted(echo):
    client, _, _ = echo
    deep = {"messages": MSGS, "metadata": {}}
    inner = deep["metadata"]
    for _ in range(61):  # body (1) > metadata (2) > ... = 63 levels
        inner["k"] = {}
        inner = inner["k"]
    assert client.post("/chat/completions", json=deep).status_code == 200


def test_harmless_fields_at_their_neutral_value_are_accepted(echo):
    client, responder, _ = echo
    neutral = chat(user="u-1", logprobs=False, top_logprobs=None, presence_penalty=0, frequency_penalty=0.0,
                   response_format={"type": "text"}, tools=[], tool_choice="none", logit_bias={}, metadata={"a": "b"},
                   store=False, service_tier="auto", parallel_tool_calls=True, modalities=["text"], stop=None, n=1,
                   stream=False, seed=-3, temperature=0, top_p=1, max_completion_tokens=4096, model="echo")
    r = client.post("/chat/completions", json=neutral)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: hi"
    parts = {"messages": [{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                          {"role": "user", "content": [{"type": "text", "text": "x y"}]}]}
    assert client.post("/chat/completions", json=parts).json()["choices"][0]["message"]["content"] == "echo: x y"
    text = client.post("/completions", json={"prompt": "a b", "echo": False, "best_of": 1, "suffix": None})
    assert text.status_code == 200 and text.json()["choices"][0]["text"] == "echo: a b"
    assert responder.seen == 3


def test_max_tokens_cap_is_configurable(serve):
    srv = serve(max_tokens_cap=8, max_n=2)
    with httpx.Client(base_url=srv.url) as client:
        assert client.post("/chat/completions", json=chat(max_tokens=8)).status_code == 200
        over = client.post("/chat/completions", json=chat(max_tokens=9)).json()["error"]
        assert over["param"] == "max_tokens" and "8" in over["message"]
        assert client.post("/chat/completions", json=chat(n=3)).json()["error"]["param"] == "n"
