"""Evaluate query encoders against a document index: runs, per-query metrics, intervals, tests.

A *system* is (query encoder, document embeddings, which query text). Systems
that share a document encoder share one FAISS index, and all systems of a
collection are scored on the same queries so they can be compared pairwise.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptlab.atomic import write_file
from ptlab.cache_heal import warn_corrupt
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


EMBEDDINGS_VERSION = "doc-embeddings-v2"  # v2: keyed by content (corpus texts, encoder weights), not folder names


def document_embeddings(model, model_key: str, collection: Collection, collection_key: str | None = None
                        ) -> tuple[np.ndarray, float]:
    """Embeddings of every document, cached on disk; returns (emb, seconds spent encoding).

    The key is what the embeddings depend on: the corpus ids and texts, the
    encoder's weights (plus `model_key` and its max_seq_length), never where the
    collection lives, so an edited collection in the same folder is re-encoded
    and a moved one is not. `collection_key` is accepted for callers that name
    the collection, and is not part of the key. A cache file that does not load
    or has the wrong shape is reported, then recomputed and overwritten.
    """
    key = fingerprint(EMBEDDINGS_VERSION, model_key, encoder_digest(model), corpus_digest(collection),
                      getattr(model, "max_seq_length", None))
    path = cache_dir("retrieval/embeddings") / f"{key}.npy"
    if path.is_file():
        emb = _load_embeddings(path, len(collection.corpus), _dimension(model))
        if emb is not None:
            return emb, 0.0
    t0 = time.perf_counter()
    emb = encode_documents(model, [collection.doc_text(d) for d in collection.corpus])
    seconds = time.perf_counter() - t0
    write_file(path, lambda f: np.save(f, emb, allow_pickle=False))
    return emb, seconds


def corpus_digest(collection: Collection) -> str:
    """A hash of every document's id and the text the encoder sees, in corpus order (the rows' order)."""
    h = hashlib.sha256()
    for doc_id in collection.corpus:
        h.update(json.dumps([doc_id, collection.doc_text(doc_id)]).encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


def encoder_digest(model) -> str | None:
    """A hash of the encoder's weights (names, dtypes, shapes, bytes): retrained weights in the same folder differ.

    About 0.1 s for a MiniLM, small next to encoding a corpus. None for an
    encoder without a `state_dict` (then only `model_key` identifies it).
    """
    state_dict = getattr(model, "state_dict", None)
    if state_dict is None:
        return None
    import torch

    h = hashlib.sha256()
    for name, tensor in state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def _dimension(model) -> int | None:
    """The encoder's output width if it says (sentence-transformers renamed the method; no FutureWarning)."""
    get = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension", None)
    return get() if callable(get) else None


def _load_embeddings(path: Path, n_docs: int, dim: int | None) -> np.ndarray | None:
    """The cached matrix, or None after a one-line warning if it is unreadable or does not fit the corpus."""
    try:
        emb = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        warn_corrupt(path, f"unreadable: {type(e).__name__}")
        return None
    if emb.ndim != 2 or emb.shape[0] != n_docs or (dim is not None and emb.shape[1] != dim):
        warn_corrupt(path, f"shape {emb.shape}, expected ({n_docs}, {dim if dim is not None else 'dim'})")
        return None
    if emb.dtype != np.float32 or not np.isfinite(emb).all():
        warn_corrupt(path, f"{emb.dtype} values, not finite float32")
        return None
    return emb


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

