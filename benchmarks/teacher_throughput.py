"""Throughput of the `openai` teacher against a local OpenAI-compatible server, and cache-hit latency.

    python benchmarks/teacher_throughput.py [--requests 3000] [--concurrency 64] [--json out.json]

Starts `ptlab serve bench --canned ...` in a separate process (so server and
client do not share a GIL), then measures:

* ptlab's openai teacher, requests/s at the given concurrency, without a cache
  (the transport alone) and with the SQLite cache writing every reply;
* the official `openai` client (AsyncOpenAI, same concurrency, retries off) on
  the same server when it is installed — the reference for the ratio;
* a cache hit: `teacher.generate([request])` on a cached request, median and p99.

Each throughput line also gives the client process's CPU time per request,
which a busy machine inflates far less than wall time (req/s).

Goals (issue 5): >= 200 requests/s at concurrency 64; a cache hit < 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ptlab.synth", "serve", "bench", "--canned", "The answer is 42.", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if " at " not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line}{proc.stderr.read()}")
    return proc, line.split(" at ")[1].strip()


def requests_for(n: int, tag: str):
    from ptlab.synth import ChatRequest

    return [ChatRequest.user(f"{tag}: what is {i} + {i}?", max_tokens=16) for i in range(n)]


def cpu_s() -> float:
    """User + system CPU seconds of this (client) process: load-independent, unlike wall time."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def bench_ptlab(url: str, n: int, concurrency: int, cache: bool, tag: str) -> tuple[float, float]:
    from ptlab.synth import make_teacher

    cfg = {"backend": "openai", "model": "bench", "base_url": url, "concurrency": concurrency, "api_key_env": None}
    teacher = make_teacher(cfg, cache=None if cache else False)
    teacher.generate(requests_for(min(200, n), f"warm-{tag}"))
    reqs = requests_for(n, tag)
    c0, t0 = cpu_s(), time.perf_counter()
    out = teacher.generate(reqs)
    dt, cpu = time.perf_counter() - t0, cpu_s() - c0
    failed = sum(not r.ok for r in out)
    if failed:
        raise SystemExit(f"{failed} requests failed: {out[0].error}")
    return n / dt, cpu / n * 1e3


def bench_openai_client(url: str, n: int, concurrency: int) -> tuple[float, float] | None:
    try:
        from openai import AsyncOpenAI
    except ImportError:
        return None

    async def run() -> tuple[float, float]:
        client = AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                r = await client.chat.completions.create(
                    model="bench", messages=[{"role": "user", "content": f"ref: what is {i} + {i}?"}], max_tokens=16
                )
                assert r.choices[0].message.content

        await asyncio.gather(*(one(i) for i in range(min(200, n))))  # warm-up
        c0, t0 = cpu_s(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        dt, cpu = time.perf_counter() - t0, cpu_s() - c0
        await client.close()
        return n / dt, cpu / n * 1e3

    return asyncio.run(run())


def bench_cache_hit(url: str, repeats: int = 2000) -> dict:
    from ptlab.synth import make_teacher

    cfg = {"backend": "openai", "model": "bench", "base_url": url, "api_key_env": None}
    teacher = make_teacher(cfg)
    req = requests_for(1, "hit")[0]
    teacher.generate([req])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        reply = teacher.generate([req])[0]
        times.append(time.perf_counter() - t0)
        assert reply.cached
    batch = requests_for(2000, "hit-batch")
    teacher.generate(batch)
    t0 = time.perf_counter()
    teacher.generate(batch)
    per_item = (time.perf_counter() - t0) / len(batch)
    times.sort()
    return {
        "median_ms": statistics.median(times) * 1e3,
        "p99_ms": times[int(0.99 * len(times))] * 1e3,
        "batched_per_request_ms": per_item * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    os.environ["PTLAB_HOME"] = tempfile.mkdtemp(prefix="ptlab-bench-")  # a fresh, empty cache
    proc, url = start_server()
    try:
        results = {
            "concurrency": args.concurrency,
            "requests": args.requests,
            "ptlab_no_cache": bench_ptlab(url, args.requests, args.concurrency, cache=False, tag="nc"),
            "ptlab_with_cache": bench_ptlab(url, args.requests, args.concurrency, cache=True, tag="c"),
            "openai_client": bench_openai_client(url, args.requests, args.concurrency),
            "cache_hit": bench_cache_hit(url),
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
        }
    finally:
        proc.kill()
        proc.wait()
    nc, wc, ref = (results[k] for k in ("ptlab_no_cache", "ptlab_with_cache", "openai_client"))
    print(f"server: ptlab serve --canned (separate process), {args.requests} requests, concurrency {args.concurrency}")
    print("                                    req/s   client CPU ms/request")
    print(f"  ptlab openai teacher, no cache   {nc[0]:7.0f}   {nc[1]:6.2f}   (goal >= 200 req/s)")
    print(f"  ptlab openai teacher, with cache {wc[0]:7.0f}   {wc[1]:6.2f}")
    if ref:
        results["ratio_vs_openai_client"] = nc[0] / ref[0]
        print(f"  official openai client           {ref[0]:7.0f}   {ref[1]:6.2f}   "
              f"ratio ptlab/openai = {results['ratio_vs_openai_client']:.2f} (req/s)")
    else:
        print("  official openai client: not installed (pip install openai) - no ratio")
    hit = results["cache_hit"]
    print(f"  cache hit: median {hit['median_ms']:.3f} ms, p99 {hit['p99_ms']:.3f} ms, "
          f"in a 2000-request batch {hit['batched_per_request_ms']:.4f} ms/request   (goal < 1 ms)")
    print(f"  machine: {results['cpus']} CPUs, load average {results['load_avg_1m']:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
