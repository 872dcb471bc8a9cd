"""ptlab's metrics agree with ir-measures computed directly and with sentence-transformers'
InformationRetrievalEvaluator (which computes the same three quantities its own way)."""

import random

import ir_measures
import numpy as np
import pytest
from ir_measures import RR, R, nDCG

from ptlab.retrieval.index import DenseIndex
from ptlab.retrieval.metrics import per_query, vectors
from ptlab.retrieval.stats import mean_ci, paired


def _random_case(seed=0, n_q=40, n_d=300):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(n_d)]
    qrels = {f"q{i}": {d: rng.choice([1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 4))} for i in range(n_q)}
    run = {q: {d: rng.random() for d in rng.sample(docs, 150)} for q in qrels}
    return qrels, run


def test_per_query_matches_ir_measures_directly():
    qrels, run = _random_case()
    ours = per_query(qrels, run)
    direct = ir_measures.calc_aggregate([nDCG @ 10, RR @ 10, R @ 100], qrels, run)
    for measure in (nDCG @ 10, RR @ 10, R @ 100):
        assert np.mean(list(ours[str(measure)].values())) == pytest.approx(direct[measure], abs=1e-9)
    for m in ir_measures.iter_calc([nDCG @ 10], qrels, run):
        assert ours["nDCG@10"][m.query_id] == pytest.approx(m.value, abs=1e-12)


def test_unretrieved_queries_score_zero_and_vectors_align():
    qrels, run = _random_case(seed=1, n_q=5)
    del run["q3"]
    ours = per_query(qrels, run)
    assert {m: v["q3"] for m, v in ours.items()} == {"nDCG@10": 0.0, "RR@10": 0.0, "R@100": 0.0}
    vec = vectors(ours, ["q0", "q3"])
    assert vec["RR@10"].shape == (2,) and vec["RR@10"][1] == 0.0


def test_intervals_and_paired_test():
    rng = np.random.default_rng(0)
    a = rng.random(400)
    b = np.clip(a - 0.05 + rng.normal(0, 0.05, 400), 0, 1)
    ci = mean_ci(a, seed=0)
    assert ci.low < a.mean() < ci.high and ci.high - ci.low < 0.1
    assert mean_ci(a, seed=0) == ci  # seeded: same numbers
    cmp = paired(a, b)
    assert cmp.diff.low > 0 and cmp.p_value < 1e-6
    assert paired(a, a).p_value == 1.0 and paired(a, a).diff.mean == 0.0


def test_agrees_with_sentence_transformers_evaluator(base_encoder, tiny_collection):
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.util import cos_sim

    from ptlab.retrieval.encoders import encode_documents, encode_queries

    col = tiny_collection
    qrels = col.qrels["test"]
    qids = list(qrels)
    index = DenseIndex(list(col.corpus), encode_documents(base_encoder, [col.doc_text(d) for d in col.corpus]))
    run = index.search(qids, encode_queries(base_encoder, [col.queries[q] for q in qids]), k=100)
    ours = {m: np.mean(list(v.values())) for m, v in per_query(qrels, run).items()}
    evaluator = InformationRetrievalEvaluator(
        queries={q: col.queries[q] for q in qids},
        corpus={d: col.doc_text(d) for d in col.corpus},
        relevant_docs={q: set(docs) for q, docs in qrels.items()},
        mrr_at_k=[10], ndcg_at_k=[10], precision_recall_at_k=[100], accuracy_at_k=[1], map_at_k=[10],
        score_functions={"cosine": cos_sim}, write_csv=False,
    )
    theirs = evaluator(base_encoder)
    assert ours["nDCG@10"] == pytest.approx(theirs["cosine_ndcg@10"], abs=1e-4)
    assert ours["RR@10"] == pytest.approx(theirs["cosine_mrr@10"], abs=1e-4)
    assert ours["R@100"] == pytest.approx(theirs["cosine_recall@100"], abs=1e-4)
    assert 0.3 < ours["nDCG@10"] < 1.0  # the base encoder is far better than chance here
