"""Per-query latency with and without an LLM at query time (batch size 1, wall clock).

Without the LLM a query costs one encoder forward pass plus a FAISS search; with
query-time expansion it also costs an LLM generation of the pseudo-document.
The generation is timed with a real causal LM from the model registry (default
SmolLM2-135M), greedy, a fixed number of new tokens, whatever the expansion
source of the study was, because a simulated expansion has no honest latency.
"""

from __future__ import annotations

import os
import statistics
import time

from pydantic import Field

from ptlab.config import Strict
from ptlab.retrieval.encoders import encode_queries
from ptlab.retrieval.expansion import PROMPT, expanded, prompt_for
from ptlab.retrieval.index import DenseIndex


class LatencySpec(Strict):
    enabled: bool = True
    llm: str = Field("smollm2-135m", description="registry name of the LLM timed for query-time expansion")
    n_queries: int = Field(5, ge=1)
    max_new_tokens: int = Field(64, ge=1)


def _median_ms(samples: list[float]) -> float:
    return 1000.0 * statistics.median(samples)


def time_retrieval(model, index: DenseIndex, texts: list[str], k: int = 100) -> float:
    """Median ms per query to encode it and search the index."""
    encode_queries(model, texts[:1])  # warm-up
    samples = []
    for text in texts:
        t0 = time.perf_counter()
        index.search(["q"], encode_queries(model, [text]), k=k)
        samples.append(time.perf_counter() - t0)
    return _median_ms(samples)


def time_generation(llm: str, queries: list[str], max_new_tokens: int, prompt: str = PROMPT
                    ) -> tuple[float, list[str]]:
    """Median ms per query for the LLM to write a pseudo-document; returns the texts too."""
    import torch

    from ptlab.models import load

    model, tok = load(llm)
    model.eval()
    texts, samples = [], []
    for i, q in enumerate([queries[0], *queries]):
        messages = [{"role": "user", "content": prompt_for(q, prompt)}]
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        if i > 0:  # the first is a warm-up
            samples.append(time.perf_counter() - t0)
            texts.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return _median_ms(samples), texts


def measure(spec: LatencySpec, encoder, index: DenseIndex, queries: list[str], k: int = 100, prompt: str = PROMPT
            ) -> dict:
    queries = queries[: spec.n_queries]
    load = os.getloadavg()[0]  # a shared machine moves these numbers; say how busy it was
    result = {"n_queries": len(queries), "encode_search_ms": time_retrieval(encoder, index, queries, k)}
    llm_ms, pseudo = time_generation(spec.llm, queries, spec.max_new_tokens, prompt)
    result.update(
        llm=spec.llm,
        llm_new_tokens=spec.max_new_tokens,
        llm_generate_ms=llm_ms,
        expanded_encode_search_ms=time_retrieval(encoder, index, [expanded(q, p) for q, p in zip(queries, pseudo)], k),
        example={"query": queries[0], "pseudo_document": pseudo[0]},
    )
    result["with_llm_ms"] = result["llm_generate_ms"] + result["expanded_encode_search_ms"]
    result["without_llm_ms"] = result["encode_search_ms"]
    result["load_average"] = round(max(load, os.getloadavg()[0]), 2)
    result["cpu_count"] = os.cpu_count()
    return result
