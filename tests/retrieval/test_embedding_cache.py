"""Document-embedding cache: keyed by content (texts, weights), healed when corrupt, written atomically."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ptlab.retrieval.beir import Collection, save_beir
from ptlab.retrieval.evaluate import document_embeddings

KEY = "all-minilm-l6-v2"


@pytest.fixture
def small(tiny_collection) -> Collection:
    """12 documents with their judged queries: enough for shapes, quick to encode."""
    docs = list(tiny_collection.corpus)[:12]
    keep = set(docs)
    qrels = {q: d for q, d in tiny_collection.qrels["test"].items() if next(iter(d)) in keep}
    return Collection({d: dict(tiny_collection.corpus[d]) for d in docs},
                      {q: tiny_collection.queries[q] for q in qrels}, {"test": qrels})


@pytest.fixture
def emb_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PTLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "retrieval" / "embeddings"


def npy_files(folder) -> list:
    return sorted(folder.glob("*.npy"))


def test_second_call_is_a_cache_hit_and_no_temporary_files_remain(base_encoder, small, emb_dir):
    fresh, spent = document_embeddings(base_encoder, KEY, small, "somewhere")
    assert spent > 0 and fresh.shape == (12, 384) and fresh.dtype == np.float32
    again, spent = document_embeddings(base_encoder, KEY, small, "somewhere")
    assert spent == 0.0 and np.array_equal(again, fresh)
    assert [p.name for p in emb_dir.iterdir() if not p.name.endswith(".npy")] == []
    assert len(npy_files(emb_dir)) == 1


def garbage(path):
    path.write_bytes(b"\x93NUMPY but not really" * 10)


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def wrong_rows(path):
    np.save(path, np.load(path)[:-1])


def wrong_width(path):
    np.save(path, np.load(path)[:, :100])


def pickled(path):
    np.save(path, np.array([{"evil": 1}] * 12, dtype=object), allow_pickle=True)


def not_finite(path):
    arr = np.load(path)
    arr[3, 7] = np.nan
    np.save(path, arr)


@pytest.mark.parametrize("damage", [garbage, truncate, wrong_rows, wrong_width, pickled, not_finite])
def test_a_damaged_file_is_reported_and_recomputed(base_encoder, small, emb_dir, capsys, damage):
    fresh, _ = document_embeddings(base_encoder, KEY, small, "c")
    [path] = npy_files(emb_dir)
    damage(path)
    capsys.readouterr()
    healed, spent = document_embeddings(base_encoder, KEY, small, "c")
    assert spent > 0
    np.testing.assert_allclose(healed, fresh, rtol=0, atol=1e-6)
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"warning: {path}: corrupt cache (") and line.endswith("); recomputing")
    again, spent = document_embeddings(base_encoder, KEY, small, "c")  # the file was rewritten: silent hit
    assert spent == 0.0 and np.array_equal(again, healed) and capsys.readouterr().err == ""


def test_key_follows_the_corpus_content_not_the_folder(base_encoder, small, emb_dir):
    fresh, _ = document_embeddings(base_encoder, KEY, small, "/data/here")
    moved, spent = document_embeddings(base_encoder, KEY, small, "/data/elsewhere")
    assert spent == 0.0 and np.array_equal(moved, fresh)  # same content, another folder: a hit

    edited = copy.deepcopy(small)
    first = next(iter(edited.corpus))
    edited.corpus[first]["text"] = "Completely different text about volcanoes and basalt."
    new, spent = document_embeddings(base_encoder, KEY, edited, "/data/here")
    assert spent > 0 and not np.allclose(new[0], fresh[0]) and np.allclose(new[1:], fresh[1:], atol=1e-5)

    renamed = Collection({("x-" + d): v for d, v in small.corpus.items()}, small.queries, small.qrels)
    _, spent = document_embeddings(base_encoder, KEY, renamed, "/data/here")
    assert spent > 0  # other ids: other rows, even with the same texts
    assert len(npy_files(emb_dir)) == 3


def test_key_follows_the_encoder_weights(base_encoder, small, emb_dir):
    fresh, _ = document_embeddings(base_encoder, KEY, small, "c")
    retrained = copy.deepcopy(base_encoder)
    with torch.no_grad():
        next(iter(retrained.parameters())).mul_(1.5)  # same name, same folder, other weights
    new, spent = document_embeddings(retrained, KEY, small, "c")
    assert spent > 0 and not np.allclose(new, fresh)


def test_cli_evaluate_heals_the_cache_and_sees_an_edited_collection(base_encoder, small, emb_dir, tmp_path, ptlab):
    folder = save_beir(small, tmp_path / "col")
    first = ptlab("retrieval", "evaluate", KEY, str(folder), "--threads", "2")
    assert first.returncode == 0, first.stderr
    [path] = npy_files(emb_dir)
    path.write_bytes(b"garbage")
    second = ptlab("retrieval", "evaluate", KEY, str(folder), "--threads", "2")
    assert second.returncode == 0, second.stderr
    assert [line for line in second.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: {path}: corrupt cache (unreadable: ValueError); recomputing"]
    table = lambda out: out.splitlines()[:-1]  # noqa: E731  (the last line is the queries/s timing)
    assert table(second.stdout) == table(first.stdout)

    corpus = folder / "corpus.jsonl"
    corpus.write_text(corpus.read_text().replace('"text": "', '"text": "Edited. ', 1))
    third = ptlab("retrieval", "evaluate", KEY, str(folder), "--threads", "2")
    assert third.returncode == 0, third.stderr
    assert len(npy_files(emb_dir)) == 2  # same folder, new content: encoded again under a new key
