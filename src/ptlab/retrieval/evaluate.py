"""Evaluate query encoders against a document index: runs, per-query metrics, intervals, tests.

A *system* is (query encoder, document embeddings, which query text). Systems
that share a document encoder share one FAISS index, and all systems of a
collection are scored on the same queries so they can be compared pairwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptlab.fingerprint import fingerprint
from ptlab.paths import cache_dir
from ptlab.retrieval.beir import Collection
from ptlab.retrieval.encoders import encode_documents, encode_queries
from ptlab.retrieval.index import DenseIndex, Run
from ptlab.retrieval.metrics import per_query, vectors
from ptlab.retrieval.stats import Interval, Paired, mean_ci, paired


@dataclass
class SystemResult:
    name: str
    per_query: dict[str, np.ndarray]  # measure -> vector in the collection's query order
    means: dict[str, Interval]
    encode_s: float
    search_s: float
    n_queries: int

    @property
    def queries_per_s(self) -> float:
        return self.n_queries / max(self.encode_s + self.search_s, 1e-9)


@dataclass
class CollectionResult:
    collection: str
    n_queries: int
    n_docs: int
    systems: dict[str, SystemResult] = field(default_factory=dict)
    comparisons: dict[str, dict[str, Paired]] = field(default_factory=dict)  # "a vs b" -> measure -> Paired
    doc_encode_s: dict[str, float] = field(default_factory=dict)


def document_embeddings(model, model_key: str, collection: Collection, collection_key: str) -> tuple[np.ndarray, float]:
    """Embeddings of every document, cached on disk by (encoder, collection); returns (emb, seconds spent)."""
    path = cache_dir("retrieval/embeddings") / f"{fingerprint(model_key, collection_key, model.max_seq_length)}.npy"
    if path.is_file():
        return np.load(path), 0.0
    t0 = time.perf_counter()
    emb = encode_documents(model, [collection.doc_text(d) for d in collection.corpus])
    seconds = time.perf_counter() - t0
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, emb)
    tmp.replace(path)
    return emb, seconds


def run_system(name: str, model, index: DenseIndex, query_ids: list[str], texts: list[str], qrels, k: int, measures,
               seed: int) -> tuple[SystemResult, Run]:
    t0 = time.perf_counter()
    q_emb = encode_queries(model, texts)
    t1 = time.perf_counter()
    run = index.search(query_ids, q_emb, k=k)
    t2 = time.perf_counter()
    vec = vectors(per_query(qrels, run, measures), query_ids)
    means = {m: mean_ci(v, seed=seed) for m, v in vec.items()}
    return SystemResult(name, vec, means, t1 - t0, t2 - t1, len(query_ids)), run


def compare(result: CollectionResult, pairs: list[tuple[str, str]], seed: int) -> None:
    for a, b in pairs:
        if a in result.systems and b in result.systems:
            sa, sb = result.systems[a], result.systems[b]
            result.comparisons[f"{a} vs {b}"] = {m: paired(sa.per_query[m], sb.per_query[m], seed=seed) for m in sa.per_query}


def save_run(run: Run, path: Path) -> None:
    """TREC run format, for use with any other IR tool."""
    lines = []
    for qid, docs in run.items():
        for rank, (did, score) in enumerate(sorted(docs.items(), key=lambda x: -x[1]), 1):
            lines.append(f"{qid} Q0 {did} {rank} {score:.6f} ptlab")
    path.write_text("\n".join(lines) + "\n")

