"""`ptlab serve` under load on loopback: 64 concurrent clients, 3000 requests, a third of them malformed.

Every good request must get its own correct answer and every malformed one a 4xx JSON
error; afterwards the handler threads must be gone and memory must not have grown with
the number of requests (traced with tracemalloc over the second half of the run).
"""

from __future__ import annotations

import gc
import http.client
import json
import random
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

from ptlab.synth.serve import EchoResponder, OpenAIServer
from ptlab.synth.serve.stats import ServerStats

CLIENTS = 64
WARMUP = 1000
MEASURED = 2000
PROMPTS = [f"prompt {i} about topic {i % 7}" for i in range(40)]


def good(i: int) -> tuple:
    prompt = PROMPTS[i % len(PROMPTS)]
    body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": prompt}], "max_tokens": 64})
    return ("/v1/chat/completions", {"Content-Length": str(len(body))}, body.encode(), 200, f"echo: {prompt}")


def bad(path: str, body: bytes, status: int, length: str | None = None) -> tuple:
    return (path, {"Content-Length": length or str(len(body))}, body, status, None)


MALFORMED = [
    bad("/v1/chat/completions", b"{not json", 400),
    bad("/v1/chat/completions", b'{"messages": []}', 400),
    bad("/v1/chat/completions", b'{"messages": [{"role": "robot", "content": "x"}]}', 400),
    bad("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "temperature": 9}', 400),
    bad("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "logprobs": true}', 400),
    bad("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\xff"}]}', 400),
    bad("/v1/chat/completions", b"[" * 3000 + b"]" * 3000, 400),
    bad("/v1/completions", b'{"prompt": [1, 2]}', 400),
    bad("/v1/chat/completions", b"", 413, length=str(2 << 20)),  # headers only: the body is never read
    bad("/v1/chat/completions", b"", 400, length="abc"),
    bad("/v1/nowhere", b"{}", 404),
]


def jobs(n: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    return [rng.choice(MALFORMED) if rng.random() < 1 / 3 else good(i) for i in range(n)]


def run_client(port: int, work: list[tuple]) -> list[str]:
    """Send `work` over keep-alive connections (a new one after each close); return what went wrong."""
    errors = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path, headers, body, status, answer in work:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders(body or None)
        resp = conn.getresponse()
        data = json.loads(resp.read())
        if resp.status != status:
            errors.append(f"{path} {body[:40]!r}: HTTP {resp.status}, expected {status}: {data}")
        elif answer is not None and data["choices"][0]["message"]["content"] != answer:
            errors.append(f"wrong answer {data['choices'][0]['message']['content']!r} for {answer!r}")
        elif answer is None and not data["error"]["message"]:
            errors.append(f"{status} without an error message: {data}")
        if resp.will_close:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.close()
    return errors


def blast(srv: OpenAIServer, work: list[tuple]) -> list[str]:
    port = srv.server_address[1]
    shares = [work[k::CLIENTS] for k in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        return [e for errs in pool.map(lambda w: run_client(port, w), shares) for e in errs]


def settle(baseline: int, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    return threading.active_count()


def test_64_clients_3000_mixed_requests(serve):
    srv = serve(responder=EchoResponder())
    baseline = threading.active_count()
    started = time.monotonic()
    warm, measured = jobs(WARMUP, 1), jobs(MEASURED, 2)
    assert blast(srv, warm) == []
    assert settle(baseline) <= baseline
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert blast(srv, measured) == []
        assert settle(baseline) <= baseline  # every handler thread has exited
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100 * MEASURED, f"{grown} bytes still held after {MEASURED} requests"
    counts = srv.stats.as_dict()["counts"]
    n_good = sum(1 for w in warm + measured if w[4] is not None)
    n_routed = sum(1 for w in warm + measured if w[0] != "/v1/nowhere")
    assert counts["ok"] == n_good and counts["received"] == n_routed
    assert counts["bad_request"] + counts["too_large"] == n_routed - n_good
    assert len(srv.stats.as_dict()["ok_by_body"]) == len(PROMPTS)
    assert time.monotonic() - started < 60


def test_stats_stop_tracking_new_bodies_at_their_cap():
    stats = ServerStats(max_bodies=2)
    for body in ("a", "b", "c", "a", "c"):
        stats.add("ok", body)
    assert stats.as_dict() == {"counts": {"ok": 5}, "ok_by_body": {"a": 2, "b": 1}}
