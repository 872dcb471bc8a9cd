"""Learning curves on a held-out dev split: the dev loss is measured along the way, the best checkpoint by
dev loss is the model saved, early stopping ends a run whose dev loss stops improving, and `converged`
judges a curve."""

import functools
import math

import numpy as np
import pytest

from ptlab.retrieval.encoders import encode_documents, encode_queries, load_encoder
from ptlab.retrieval.train import (
    StudentSpec,
    TrainSpec,
    _args,
    _no_duplicates_by_positive,
    converged,
    eval_steps,
    max_steps,
    student_dataset,
    train_student,
    train_teacher,
)


def _curve(*losses, start=0, every=10):
    return [{"step": start + i * every, "epoch": 0.0, "train_loss": None if i == 0 else 1.0, "dev_loss": v}
            for i, v in enumerate(losses)]


def test_converged_judges_hand_made_curves():
    ok, why = converged(_curve(2.0, 1.6, 1.3, 1.1, 0.95, 0.85, 0.78))  # still falling ~8% per point
    assert not ok and "not below 1%" in why and "steps 50-60" in why
    ok, why = converged(_curve(2.0, 1.2, 1.0, 0.99, 0.995, 0.992, 0.993))  # flat over the last third
    assert ok and "below 1%" in why
    ok, _ = converged(_curve(2.0, 1.0, 0.9, 1.1, 1.3, 1.6))  # past its best: overfitting counts as converged
    assert ok
    assert converged(_curve(2.0, 1.6, 1.3), stopped_early=True) == (True, converged([], True)[1])
    assert "Stopped early" in converged([], stopped_early=True)[1]
    ok, why = converged(_curve(2.0, 1.0))
    assert not ok and "too few" in why
    # the last third of 10 intervals is the last 4: a 1.5% gain there is not convergence, 0.5% is
    base = [3.0, 2.0, 1.5, 1.2, 1.1, 1.05, 1.0]
    assert not converged(_curve(*base, 0.999, 0.995, 0.990, 0.985))[0]
    assert converged(_curve(*base, 0.999, 0.998, 0.997, 0.995))[0]
    # points without a dev loss are skipped
    assert converged(_curve(2.0, 1.0, 0.999, 0.999) + [{"step": 99, "dev_loss": None}])[0]


def test_steps_between_evaluations():
    spec = TrainSpec(batch_size=4, epochs=1.25, eval_points=2)
    assert max_steps(16, spec) == 5 and eval_steps(16, spec) == 2
    assert eval_steps(16, spec.model_copy(update={"eval_points": 10})) == 1  # never 0
    assert max_steps(17, TrainSpec(batch_size=4, epochs=2)) == 10  # the last, short batch is a step
    assert eval_steps(2000, StudentSpec()) == 32 * 20 // 40  # 32 batches of 64 a epoch, 20 epochs, 40 points


def test_dev_batches_of_the_student_never_pair_two_rows_with_the_same_positive():
    """The trainer builds the dev loader with `args.batch_sampler` too; keyed by the rows' own positives,
    every dev row is evaluated once, and same-positive rows are never each other's in-batch negatives."""
    import torch

    dim = 3
    positives = np.repeat(np.eye(dim, dtype=np.float32), [4, 3, 3], axis=0)  # 10 rows, 3 distinct positives
    ds = student_dataset([f"q{i}" for i in range(10)], np.zeros((10, dim), np.float32), positives)
    sampler = _no_duplicates_by_positive(dim, ds, batch_size=4, drop_last=False, valid_label_columns=["label"],
                                         generator=torch.Generator().manual_seed(0), seed=0)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(10))
    for batch in batches:
        assert len({positives[i].tobytes() for i in batch}) == len(batch)
    assert batches == list(sampler)  # the same batches at every evaluation


@pytest.fixture(scope="module")
def rows(tiny_collection, base_encoder, tmp_path_factory):
    """24 SQuAD questions (16 train, 8 dev) with their passages, a 'teacher' (the packaged base, saved)
    and its teacher(q+) / doc(p+) vectors."""
    col = tiny_collection
    qids = list(col.qrels["test"])[:24]
    queries = [col.queries[q] for q in qids]
    passages = [col.doc_text(next(iter(col.qrels["test"][q]))) for q in qids]
    teacher = tmp_path_factory.mktemp("teacher")
    base_encoder.save(str(teacher))
    targets = encode_queries(base_encoder, [f"{q} {p[:80]}" for q, p in zip(queries, passages)])
    docs = encode_documents(base_encoder, passages)
    return dict(queries=queries, passages=passages, teacher=teacher, targets=targets, docs=docs)


def _dev_loss(model, dataset, loss, args) -> float:
    """The dev loss as the trainer measures it during training (same batches, same loss, eval mode)."""
    from sentence_transformers import SentenceTransformerTrainer

    trainer = SentenceTransformerTrainer(model=model, args=args, eval_dataset=dataset, loss=loss)
    return float(trainer.evaluate()["eval_loss"])


STUDENT = dict(alpha=0.5, batch_size=4, max_seq_length=32, warmup_ratio=0.0, epochs=10, eval_points=10)


@pytest.fixture(scope="module")
def early(rows, tmp_path_factory):
    """A student at a learning rate that wrecks it, patience 1: the dev loss stops improving at once."""
    out = tmp_path_factory.mktemp("early") / "student"
    spec = StudentSpec(learning_rate=5e-3, patience=1, **STUDENT)
    dev = (rows["queries"][16:], rows["targets"][16:], rows["docs"][16:])
    info = train_student(rows["teacher"], rows["queries"][:16], rows["targets"][:16], rows["docs"][:16], spec, out,
                         dev=dev)
    return dict(info=info, out=out, spec=spec, dev=dev)


def test_early_stopping_ends_the_run_and_the_best_checkpoint_is_the_model_saved(early, tmp_path):
    from ptlab.retrieval.softqe_loss import SoftQELoss

    info, spec = early["info"], early["spec"]
    assert info["max_steps"] == 40 and info["eval_steps"] == 4 and info["dev_rows"] == 8
    assert info["stopped_early"] and info["converged"] and "Stopped early" in info["convergence_rule"]
    assert info["steps"] < info["max_steps"] and info["epochs_run"] < spec.epochs
    curve = info["curve"]
    assert [c["step"] for c in curve] == list(range(0, info["steps"] + 1, 4))  # at the start, then every 4 steps
    assert curve[0]["train_loss"] is None and all(math.isfinite(c["train_loss"]) for c in curve[1:])
    assert all(math.isfinite(c["dev_loss"]) and c["dev_loss"] > 0 for c in curve)
    # patience 1: the run ends at the first evaluation without a new low, one after the best
    best = min(curve[1:], key=lambda c: c["dev_loss"])
    assert info["best_step"] == best["step"] == curve[-2]["step"] and info["best_dev_loss"] == best["dev_loss"]
    assert curve[-1]["dev_loss"] >= info["best_dev_loss"]
    # the saved student is that checkpoint: its dev loss, measured again, is the best one, not the last one
    saved = load_encoder(str(early["out"]))
    saved.max_seq_length = spec.max_seq_length
    args = _args(spec, str(tmp_path), 1, router_mapping={"query": "query"},
                 batch_sampler=functools.partial(_no_duplicates_by_positive, saved.get_embedding_dimension()))
    again = _dev_loss(saved, student_dataset(*early["dev"]), SoftQELoss(saved, spec.alpha, spec.scale), args)
    assert again == pytest.approx(info["best_dev_loss"], rel=1e-5, abs=1e-6)
    assert abs(again - curve[-1]["dev_loss"]) > 1e-4
    assert not list(early["out"].glob("checkpoint-*"))  # checkpoints stayed in the temp dir


def test_teacher_curve_has_a_point_per_evaluation_and_the_train_loss_of_each_interval(rows, tmp_path):
    pairs = list(zip(rows["queries"], rows["passages"]))
    spec = TrainSpec(batch_size=4, max_seq_length=32, learning_rate=1e-4, warmup_ratio=0.0, epochs=1.25,
                     eval_points=2, patience=None)
    info = train_teacher("all-minilm-l6-v2", pairs[:16], spec, tmp_path / "teacher", dev_pairs=pairs[16:])
    assert info["steps"] == info["max_steps"] == 5 and not info["stopped_early"] and info["patience"] is None
    curve = info["curve"]
    assert [c["step"] for c in curve] == [0, 2, 4, 5]  # the trainer evaluates the last step too
    assert [c["epoch"] for c in curve] == [0.0, 0.5, 1.0, 1.25]
    assert all(math.isfinite(c["dev_loss"]) for c in curve)
    # each point's train loss is the mean over its interval: weighted by the interval lengths, the run's mean
    lengths = np.diff([c["step"] for c in curve])
    assert np.dot(lengths, [c["train_loss"] for c in curve[1:]]) / 5 == pytest.approx(info["train_loss"], rel=1e-6)
    best = min(curve[1:], key=lambda c: c["dev_loss"])
    assert (info["best_step"], info["best_dev_loss"]) == (best["step"], best["dev_loss"])
    assert converged(curve) == (info["converged"], info["convergence_rule"])
    saved = load_encoder(str(tmp_path / "teacher"))
    assert saved.max_seq_length != spec.max_seq_length  # saved with its encoding length, trained at 32
    saved.max_seq_length = spec.max_seq_length
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    dev = Dataset.from_dict({"query": rows["queries"][16:], "positive": rows["passages"][16:]})
    again = _dev_loss(saved, dev, MultipleNegativesRankingLoss(saved, scale=spec.scale), _args(spec, str(tmp_path), 1))
    assert again == pytest.approx(info["best_dev_loss"], rel=1e-5, abs=1e-6)


def test_without_a_dev_set_a_run_goes_to_the_epoch_cap_and_records_no_curve(rows, tmp_path):
    spec = StudentSpec(learning_rate=1e-4, patience=1, **{**STUDENT, "epochs": 2})
    info = train_student(rows["teacher"], rows["queries"][:16], rows["targets"][:16], rows["docs"][:16], spec,
                         tmp_path / "student")
    assert info["steps"] == 8 and math.isfinite(info["train_loss"])
    assert not {"curve", "best_step", "converged", "stopped_early"} & set(info)


def test_same_seed_same_curve(rows, early, tmp_path):
    """On CPU, the same data, spec and seed give the same learning curve, number for number."""
    dev = early["dev"]
    info = train_student(rows["teacher"], rows["queries"][:16], rows["targets"][:16], rows["docs"][:16],
                         early["spec"], tmp_path / "again", dev=dev)
    assert info["curve"] == early["info"]["curve"]
