"""Exact inner-product search with FAISS over L2-normalised embeddings (= cosine)."""

from __future__ import annotations

import numpy as np

Run = dict[str, dict[str, float]]  # query id -> {doc id: score}


class DenseIndex:
    """A flat FAISS index that remembers document ids, so searches return BEIR-style runs."""

    def __init__(self, doc_ids: list[str], embeddings: np.ndarray):
        import faiss

        if len(doc_ids) != len(embeddings):
            raise ValueError(f"{len(doc_ids)} ids for {len(embeddings)} embeddings")
        self.doc_ids = list(doc_ids)
        self.index = faiss.IndexFlatIP(embeddings.shape[1])
        self.index.add(np.ascontiguousarray(embeddings, dtype=np.float32))

    def search(self, query_ids: list[str], embeddings: np.ndarray, k: int = 100) -> Run:
        k = min(k, len(self.doc_ids))
        scores, idx = self.index.search(np.ascontiguousarray(embeddings, dtype=np.float32), k)
        return {
            qid: {self.doc_ids[j]: float(s) for s, j in zip(srow, irow) if j >= 0}
            for qid, srow, irow in zip(query_ids, scores, idx)
        }
