"""SoftQE student: the precomputed-document loss equals the re-encoding one; alpha lists expand
into one cached student each; the report lists each student and its comparisons."""

import numpy as np
import pytest
import torch

from ptlab.config import load_config
from ptlab.errors import ConfigError, DataError
from ptlab.retrieval.encoders import encode_documents, encode_queries
from ptlab.retrieval.softqe_loss import SoftQELoss
from ptlab.retrieval.train import StudentSpec, student_dataset, student_from_teacher, train_student
from ptlab.studies.softqe.cells import comparisons, student_name, systems
from ptlab.studies.softqe.config import SoftQEConfig
from ptlab.studies.softqe.shared import student_keys
from ptlab.studies.softqe.study import STUDY


@pytest.fixture(scope="module")
def teacher_dir(base_encoder, tmp_path_factory):
    """Any sentence-transformers model serves as the 'teacher' here: the packaged base, saved."""
    folder = tmp_path_factory.mktemp("teacher")
    base_encoder.save(str(folder))
    return folder


def _features(model, texts, task):
    return {**model.preprocess(texts, task=task), "task": task}


def test_precomputed_doc_embeddings_give_the_same_loss_as_reencoding(teacher_dir, tiny_collection):
    col = tiny_collection
    qids = list(col.qrels["test"])[:12]
    queries = [col.queries[q] for q in qids]
    passages = [col.doc_text(next(iter(col.qrels["test"][q]))) for q in qids]
    student = student_from_teacher(teacher_dir)
    student.max_seq_length = 128
    student.eval()  # no dropout: both forms see the same embeddings
    targets = torch.from_numpy(encode_queries(student, [f"{q} {p[:80]}" for q, p in zip(queries, passages)]))
    docs = torch.from_numpy(encode_documents(student, passages))  # the frozen route's vectors, like the index
    q = student.encode_query(queries, convert_to_tensor=True)
    mse = torch.nn.functional.mse_loss(q, targets).item() * student.get_embedding_dimension()
    for alpha in (0.0, 0.5, 1.0):
        loss = SoftQELoss(student, alpha=alpha)
        with torch.no_grad():
            old = loss([_features(student, queries, "query"), _features(student, passages, "document")], targets)
            new = loss([_features(student, queries, "query")], torch.cat([targets, docs], dim=1))
        assert old.item() > 0.01
        assert new.item() == pytest.approx(old.item(), rel=1e-5, abs=1e-6), alpha
        # and it is the composition of the two library terms
        mnrl = loss.contrast.compute_loss_from_embeddings([q, docs], None).item()
        assert new.item() == pytest.approx(alpha * mse + (1 - alpha) * mnrl, rel=1e-4, abs=1e-6), alpha


def test_labels_of_the_wrong_width_fail_clearly(teacher_dir):
    student = student_from_teacher(teacher_dir)
    loss = SoftQELoss(student)
    with pytest.raises(ValueError, match=r"labels must be \(batch, 768\)"):
        loss([_features(student, ["a question"], "query")], torch.zeros(1, 384))
    ds = student_dataset(["a", "b"], np.zeros((2, 4), np.float32), np.ones((2, 4), np.float32))
    assert ds.column_names == ["query", "label"] and ds[0]["label"] == [0.0] * 4 + [1.0] * 4
    with pytest.raises(DataError, match="2 queries, 2 targets, 3 positives"):
        student_dataset(["a", "b"], np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(DataError, match="one alpha per student"):
        train_student(teacher_dir, ["a"] * 4, np.zeros((4, 4)), np.zeros((4, 4)), StudentSpec(alpha=[0.0, 1.0]),
                      teacher_dir / "never")


def test_alpha_list_expands_into_one_student_each_with_stable_keys():
    cfg = load_config(SoftQEConfig, None, ["student.alpha=[0, 0.5, 1]"])
    assert cfg.student.alphas == [0.0, 0.5, 1.0]
    keys = student_keys(cfg, "teacher-key", ["q1", "q2"], ["d1"])
    assert list(keys) == [0.0, 0.5, 1.0] and len(set(keys.values())) == 3
    # a scalar alpha is the one-student list, and its key is that list member's key (the cache is shared)
    single = load_config(SoftQEConfig, None, ["student.alpha=0.5"])
    assert single.student.alphas == [0.5] and student_keys(single, "teacher-key", ["q1", "q2"], ["d1"]) == {0.5: keys[0.5]}
    # anything a student depends on changes its key
    assert student_keys(cfg, "other-teacher", ["q1", "q2"], ["d1"])[0.5] != keys[0.5]
    assert student_keys(cfg, "teacher-key", ["q1"], ["d1"])[0.5] != keys[0.5]
    assert student_keys(cfg, "teacher-key", ["q1", "q2"], ["d2"])[0.5] != keys[0.5]  # another dev split
    lr = load_config(SoftQEConfig, None, ["student.alpha=[0, 0.5, 1]", "student.learning_rate=3e-5"])
    assert student_keys(lr, "teacher-key", ["q1", "q2"], ["d1"])[0.5] != keys[0.5]
    # the quick variant keeps the ablation
    from ptlab.studies.grid.config import load_grid_config

    quick = load_grid_config(SoftQEConfig, "softqe", None, ["student.alpha=[0, 0.5, 1]"], STUDY.quick)
    assert quick.student.alphas == cfg.student.alphas


@pytest.mark.parametrize("value, message", [("1.5", "between 0 and 1, got 1.5"), ("[0, -0.1]", "got -0.1"),
                                            ("[]", "at least one alpha"), ("[0.5, 0.5]", "repeat")])
def test_bad_alpha_is_one_line(value, message):
    with pytest.raises(ConfigError, match=r"student\.alpha: ") as err:
        load_config(SoftQEConfig, None, [f"student.alpha={value}"])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_systems_and_comparisons_follow_the_alphas():
    assert systems([0.0, 0.5]) == ["base", "base + LLM exp.", "teacher (q+)", "teacher (q)", "SoftQE α=0",
                                   "SoftQE α=0.5"]
    assert comparisons([0.0, 0.5, 1.0]) == [
        ("SoftQE α=0", "base"), ("SoftQE α=0.5", "base"), ("SoftQE α=1", "base"),
        ("SoftQE α=0.5", "SoftQE α=0"), ("SoftQE α=1", "SoftQE α=0")]
    # without an alpha = 0 student the distilled ones are compared with where they started
    assert comparisons([0.7]) == [("SoftQE α=0.7", "base"), ("SoftQE α=0.7", "teacher (q)")]
    assert student_name(0.25) == "SoftQE α=0.25"


def test_report_lists_each_student(tmp_path):
    from ptlab.retrieval.evaluate import CollectionResult, SystemResult, compare
    from ptlab.retrieval.stats import mean_ci
    from ptlab.studies.softqe.analysis import SoftQEResults
    from ptlab.studies.softqe.figures import systems_figure
    from ptlab.studies.softqe.report import build_document, headline_table

    rng = np.random.default_rng(0)
    res = CollectionResult("SQuAD (in-domain)", 50, 100)
    for name in systems([0.0, 0.5]):
        v = rng.random(50)
        res.systems[name] = SystemResult(name, {"nDCG@10": v}, {"nDCG@10": mean_ci(v)}, 1.0, 0.1, 50)
    compare(res, comparisons([0.0, 0.5]), 0)
    info = {"epochs": 3, "batch_size": 64, "learning_rate": 1e-4, "steps": 30, "train_loss": 0.5,
            "seconds": 12.0}
    shared = {"expansion": {"backend": "simulated-expansion", "model": "oracle"}, "timings_s": [["teacher", 1.0]],
              "load_average": 3.5, "cpu_count": 2}
    training = {"teacher": {**info, "pairs": 128}, "students": {"0": {**info, "rows": 640}, "0.5": None},
                "train_queries": 640, "teacher_queries": 128}
    r = SoftQEResults({"config": {"threads": 1}}, shared, None, [0.0, 0.5], {"SQuAD (in-domain)": res}, training)
    text = build_document(r).markdown()
    assert "| SoftQE α=0.5 | no |" in text and "| SoftQE α=0.5 vs SoftQE α=0 |" in text
    assert "| teacher (q+, p+) | 128 | 3 | 64 | 0.0001 | 30 | 0.500 | 12 |" in text
    assert "| SoftQE α=0.5 | (no train_info.json: trained elsewhere)" in text and "load average" in text
    assert "## Findings" in text and "SoftQE α=0.5 beats SoftQE α=0" in text.split("## Training")[0]
    assert list(headline_table(r.results)["system"]) == systems([0.0, 0.5])
    assert len(systems_figure(r.results)) > 5_000
