"""A small end-to-end run on a tiny collection: expand, train teacher and SoftQE student, evaluate."""

import json

import numpy as np
import pytest
import torch

from ptlab.retrieval.encoders import encode_documents, encode_queries, load_encoder
from ptlab.retrieval.expansion import ExpansionSpec, build_backend, expand, expanded, metered
from ptlab.retrieval.index import DenseIndex
from ptlab.retrieval.metrics import per_query
from ptlab.retrieval.simulated import SimulationSpec
from ptlab.retrieval.train import StudentSpec, TrainSpec, train_student, train_teacher


def _ndcg(model, col, qids, texts, docs):
    index = DenseIndex(list(col.corpus), docs)
    run = index.search(qids, encode_queries(model, texts), k=20)
    vals = per_query({q: col.qrels["test"][q] for q in qids}, run, ["nDCG@10"])["nDCG@10"]
    return float(np.mean(list(vals.values())))


@pytest.fixture(scope="module")
def trained(tiny_collection, tmp_path_factory):
    col = tiny_collection
    qids = list(col.qrels["test"])
    train, test = qids[:32], qids[32:]
    spec = ExpansionSpec(source="oracle", oracle=SimulationSpec(know_rate=1.0, keep=1.0))
    llm = metered(spec, build_backend(spec, [col]))
    pseudo = expand(llm, {q: col.queries[q] for q in qids}, spec)
    positives = [col.doc_text(next(iter(col.qrels["test"][q]))) for q in train]
    plus = [expanded(col.queries[q], pseudo[q]) for q in train]
    root = tmp_path_factory.mktemp("models")
    fast = dict(batch_size=16, max_seq_length=48, learning_rate=1e-4, warmup_ratio=0.0)
    info = train_teacher("all-minilm-l6-v2", list(zip(plus, positives)), TrainSpec(epochs=1, **fast),
                         root / "teacher")
    teacher = load_encoder(str(root / "teacher"), 128)
    targets = encode_queries(teacher, plus)
    doc_emb = encode_documents(teacher, positives)  # the frozen document route's vectors, as in the index
    raw = [col.queries[q] for q in train]
    s_info = train_student(root / "teacher", raw, targets, doc_emb, StudentSpec(alpha=0.8, epochs=3, **fast),
                           root / "student")
    return dict(col=col, train=train, test=test, pseudo=pseudo, root=root, teacher=teacher, targets=targets,
                raw=raw, positives=positives, doc_emb=doc_emb, info=info, s_info=s_info, llm=llm, fast=fast)


def test_models_are_saved_and_student_searches_the_teacher_index(trained):
    root = trained["root"]
    assert (root / "teacher" / "modules.json").is_file() and (root / "student" / "modules.json").is_file()
    assert trained["info"]["pairs"] == 32 and np.isfinite(trained["info"]["train_loss"])
    s_info = trained["s_info"]
    assert s_info["rows"] == 32 and s_info["steps"] == 6 and np.isfinite(s_info["train_loss"])  # 2 batches x 3 epochs
    assert json.loads((root / "student" / "train_info.json").read_text())["steps"] == 6
    assert "curve" not in s_info and "curve" not in trained["info"]  # no dev set: no learning curve
    student = load_encoder(str(root / "student"), 128)
    docs = trained["positives"][:6]
    assert np.array_equal(encode_documents(student, docs), encode_documents(trained["teacher"], docs))
    assert not np.allclose(encode_queries(student, docs), encode_queries(trained["teacher"], docs))


def test_student_query_route_moved_and_document_route_is_the_teacher_bit_for_bit(trained):
    root = trained["root"]
    teacher = trained["teacher"]
    student = load_encoder(str(root / "student"), 128)
    t_params = teacher.state_dict()  # "0.model.embeddings..." -> the student's "0.sub_modules.<route>.0.model..."
    route = {r: {k.split(f"sub_modules.{r}.", 1)[1]: v for k, v in student.state_dict().items()
                 if f"sub_modules.{r}." in k} for r in ("query", "document")}
    doc, query = route["document"], route["query"]
    assert doc.keys() == query.keys() == t_params.keys()
    assert all(torch.equal(doc[k], t_params[k]) for k in doc)  # frozen route: bit-identical
    moved = [k for k in query if not torch.equal(query[k], t_params[k])]
    assert len(moved) > len(query) // 2, moved  # the query route trained (most tensors changed)
    s_q, t_q = encode_queries(student, trained["raw"]), encode_queries(teacher, trained["raw"])
    cos = np.sum(s_q * t_q, axis=1)
    assert 1.0 - cos.mean() > 2e-3, cos.mean()  # a measurable move of the query embeddings


def test_student_moves_raw_queries_toward_expanded_teacher_embeddings(trained):
    student = load_encoder(str(trained["root"] / "student"), 128)
    targets = trained["targets"]
    before = np.mean(np.sum((encode_queries(trained["teacher"], trained["raw"]) - targets) ** 2, axis=1))
    after = np.mean(np.sum((encode_queries(student, trained["raw"]) - targets) ** 2, axis=1))
    assert after < 0.9 * before, (before, after)


def test_expansion_is_cached_and_oracle_expansion_helps_the_base_encoder(trained, base_encoder):
    col, test, pseudo = trained["col"], trained["test"], trained["pseudo"]
    spec = ExpansionSpec(source="oracle", oracle=SimulationSpec(know_rate=1.0, keep=1.0))
    again = expand(trained["llm"], {q: col.queries[q] for q in test}, spec)
    assert again == {q: pseudo[q] for q in test}
    assert trained["llm"].report()["cached"] >= len(test)
    docs = encode_documents(base_encoder, [col.doc_text(d) for d in col.corpus])
    plain = _ndcg(base_encoder, col, test, [col.queries[q] for q in test], docs)
    with_exp = _ndcg(base_encoder, col, test, [expanded(col.queries[q], pseudo[q]) for q in test], docs)
    assert with_exp > plain + 0.05, (plain, with_exp)


@pytest.mark.slow
def test_same_seed_same_student(trained, tmp_path):
    """Same config and seed -> the same weights, hence the same numbers, on CPU."""
    root = trained["root"]
    rows = (trained["raw"][:16], trained["targets"][:16], trained["doc_emb"][:16])
    for name in ("a", "b"):
        train_student(root / "teacher", *rows, StudentSpec(alpha=0.8, epochs=3, **trained["fast"]), tmp_path / name)
    a = encode_queries(load_encoder(str(tmp_path / "a"), 128), trained["raw"][:8])
    b = encode_queries(load_encoder(str(tmp_path / "b"), 128), trained["raw"][:8])
    assert np.array_equal(a, b)


@pytest.mark.slow
def test_real_llm_expansion_through_the_synth_teacher(tiny_collection):
    """`expansion.source: llm` runs SmolLM2-135M through synthesis's hf backend, cached."""
    col = tiny_collection
    spec = ExpansionSpec(source="llm", max_tokens=8)
    llm = metered(spec, build_backend(spec, [col]))
    queries = {q: col.queries[q] for q in list(col.queries)[:2]}
    first = expand(llm, queries, spec)
    assert llm.backend == "hf" and all(text for text in first.values())
    assert expand(llm, queries, spec) == first and llm.report()["cached"] == 2
