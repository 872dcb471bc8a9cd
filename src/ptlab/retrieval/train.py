"""Train the two encoders of SoftQE with sentence-transformers' trainer.

- Teacher: the base encoder fine-tuned on (q+, positive passage) with
  `MultipleNegativesRankingLoss` (in-batch negatives; the no-duplicates sampler
  keeps a passage from being its own in-batch negative).
- Student: a `Router` model whose "query" route starts as a copy of the teacher
  and is trained on raw q with `SoftQELoss`, and whose "document" route *is*
  the teacher, frozen, so the student searches the teacher's document index.
  Because that route is frozen, doc(p+) is passed in precomputed (the index's
  own vectors) and a student step encodes only the short raw queries.

Given a held-out dev set, a run is sized by its learning curve, not by a fixed
step count: `epochs` is only the cap; the dev loss (the training loss itself,
on dev rows, no dropout) is measured at the start and `eval_points` times per
run, the best checkpoint by dev loss is the model kept, and training stops
early after `patience` evaluations without improvement. All of it is the
trainer's own machinery (eval_strategy / save_strategy="best" /
load_best_model_at_end / `EarlyStoppingCallback`); checkpoints live in a
temporary directory.

Each saved model directory also holds `train_info.json` (rows, steps, loss, seconds; with a dev set also
the learning curve, the best step and whether the run converged, see `converged`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from ptlab.atomic import atomic_dir, write_json
from ptlab.config import Strict
from ptlab.errors import DataError
from ptlab.retrieval.encoders import load_encoder


class TrainSpec(Strict):
    epochs: float = Field(3.0, gt=0, description="the most epochs a run may take (with a dev set, early stopping "
                          "usually ends it sooner)")
    batch_size: int = Field(32, ge=2)
    learning_rate: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_seq_length: int = Field(128, ge=16, description="truncation while training (passages)")
    scale: float = Field(20.0, gt=0, description="inverse temperature of the contrastive loss")
    seed: int = 0
    eval_points: int = Field(12, ge=1, description="dev-loss evaluations per run (plus one before training): "
                             "every max(1, max_steps // eval_points) steps; only with a dev set")
    patience: int | None = Field(3, ge=1, description="stop after this many evaluations without a lower dev loss "
                                 "(None: run to the epoch cap); only with a dev set")


class StudentSpec(TrainSpec):
    """The student learns only short raw queries (doc(p+) comes precomputed), so its steps are cheap:
    more epochs, a larger batch (more in-batch negatives) and a higher learning rate than the teacher."""

    alpha: float | list[float] = Field(
        [0.0, 0.5, 1.0], description="weight of the distillation (MSE) term; a list trains one student per value")
    epochs: float = Field(20.0, gt=0, description="the most epochs a run may take (with a dev set, early stopping "
                          "usually ends it sooner)")
    batch_size: int = Field(64, ge=2)
    learning_rate: float = Field(1e-4, gt=0)
    eval_points: int = Field(40, ge=1, description="dev-loss evaluations per run (plus one before training): a "
                             "student's dev loss costs ~1% of its training, so it is measured often")
    max_seq_length: int = Field(64, ge=16, description="truncation of raw queries while training")

    @field_validator("alpha")
    @classmethod
    def _alpha_in_range(cls, v):
        values = v if isinstance(v, list) else [v]
        if not values:
            raise ValueError("give at least one alpha")
        bad = [a for a in values if not 0.0 <= a <= 1.0]
        if bad:
            raise ValueError(f"each alpha must be between 0 and 1, got {bad[0]}")
        if len(set(values)) != len(values):
            raise ValueError(f"alpha values repeat: {values}")
        return v

    @property
    def alphas(self) -> list[float]:
        return [float(a) for a in (self.alpha if isinstance(self.alpha, list) else [self.alpha])]

    def with_alpha(self, alpha: float) -> StudentSpec:
        """This spec for one student: the same knobs, a single alpha."""
        return self.model_copy(update={"alpha": float(alpha)})


def max_steps(rows: int, spec: TrainSpec) -> int:
    """Optimizer steps in `spec.epochs` epochs of `rows` rows (what the trainer computes: no batch is dropped)."""
    return max(1, math.ceil(spec.epochs * math.ceil(rows / spec.batch_size)))


def eval_steps(rows: int, spec: TrainSpec) -> int:
    """Steps between two dev-loss evaluations: `eval_points` of them in a run that goes to the epoch cap."""
    return max(1, max_steps(rows, spec) // spec.eval_points)


def _args(spec: TrainSpec, out: str, every: int | None = None, **extra):
    """Training arguments; `every` (steps) turns on the dev evaluation, keeping the best checkpoint by dev loss."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    dev = {} if every is None else dict(
        eval_strategy="steps", eval_steps=every, eval_on_start=True, per_device_eval_batch_size=spec.batch_size,
        logging_strategy="steps", logging_steps=every,
        # a checkpoint only when the dev loss reaches a new low (rotated to that one), the model weights only
        save_strategy="best", save_total_limit=1, save_only_model=True,
        load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False)
    return SentenceTransformerTrainingArguments(
        output_dir=out,
        num_train_epochs=spec.epochs,
        per_device_train_batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        warmup_steps=float(spec.warmup_ratio),  # a float in [0, 1) is a ratio (transformers v5)
        seed=spec.seed,
        data_seed=spec.seed,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **{"save_strategy": "no", "logging_strategy": "no", "batch_sampler": BatchSamplers.NO_DUPLICATES,
           **dev, **extra},
    )


def _no_duplicates_by_positive(dim: int, dataset, **kwargs):
    """A no-duplicates batch sampler for student rows (label = [teacher(q+) ; doc(p+)]) that also compares
    doc(p+), so two queries with the same positive never meet in a batch, where one would be the other's
    negative. It reads the positives from the rows it is given, so the train and the dev loader (the trainer
    builds both with `args.batch_sampler`) each get their own keys."""
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    positives = np.asarray(dataset.with_format("numpy")["label"], dtype=np.float32)[:, dim:]
    keys = [hashlib.sha1(np.ascontiguousarray(row).tobytes()).hexdigest() for row in positives]
    return NoDuplicatesBatchSampler(dataset.add_column("_positive_key", keys), **kwargs)


CONVERGENCE_RULE = ("converged: training stopped early (patience evaluations without a lower dev loss), or the "
                    "best dev loss improved by less than {tol:.0%} (relative) over the last third of the run's "
                    "evaluation points")


def converged(curve: list[dict], stopped_early: bool = False, tol: float = 0.01) -> tuple[bool, str]:
    """Did a run converge, judged from its learning curve? -> (verdict, the rule applied with its numbers).

    Converged when it stopped early by patience, or when the best dev loss of the last third of the evaluation
    intervals is less than `tol` (relative) below the best dev loss before them: more steps at this learning
    rate would not buy a lower dev loss. Fewer than three evaluation points: not converged (nothing to judge)."""
    rule = CONVERGENCE_RULE.format(tol=tol)
    if stopped_early:
        return True, f"{rule}. Stopped early by patience."
    points = [(c["step"], float(c["dev_loss"])) for c in curve if c.get("dev_loss") is not None]
    if len(points) < 3:
        return False, f"{rule}. Only {len(points)} evaluation point(s): too few to judge."
    split = len(points) - 1 - math.ceil((len(points) - 1) / 3)  # the last third of the intervals follows it
    before = min(loss for _, loss in points[: split + 1])
    after = min(loss for _, loss in points[split + 1 :])
    gain = (before - after) / abs(before) if before else (0.0 if after >= before else math.inf)
    verdict = gain < tol
    return verdict, (f"{rule}. Best dev loss {before:.4g} up to step {points[split][0]}, {after:.4g} after it "
                     f"(steps {points[split + 1][0]}-{points[-1][0]}): {gain:+.2%} improvement, "
                     f"{'below' if verdict else 'not below'} {tol:.0%}.")


def _log_last_step():
    """A callback that logs the train loss at the last step too (the trainer logs only every `logging_steps`),
    so the final evaluation point, which the trainer adds when a run does not end on an eval step, has one."""
    from transformers import TrainerCallback

    class LogLastStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps and args.logging_strategy == "steps":
                control.should_log = True
            return control

    return LogLastStep()


def learning_curve(log_history: list[dict]) -> list[dict]:
    """The trainer's log history -> one point per dev evaluation: step, epoch, train_loss (mean over the steps
    since the previous point; None before training) and dev_loss."""
    train = {e["step"]: e["loss"] for e in log_history if "loss" in e}
    return [{"step": int(e["step"]), "epoch": round(float(e.get("epoch") or 0.0), 4),
             "train_loss": train.get(e["step"]), "dev_loss": float(e["eval_loss"])}
            for e in log_history if "eval_loss" in e]


def _fit(model, dataset, loss, args, dev_dataset=None, patience: int | None = None) -> dict:
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import EarlyStoppingCallback, PrinterCallback

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    callbacks = []
    if dev_dataset is not None:
        callbacks.append(_log_last_step())
        if patience is not None:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=dev_dataset,
                                         loss=loss, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # no log dicts on stdout (it stands in for tqdm, which is off)
    t0 = time.perf_counter()
    out = trainer.train()
    info = {"train_loss": float(out.training_loss), "steps": int(out.global_step),
            "seconds": round(time.perf_counter() - t0, 2)}
    if dev_dataset is None:
        return info
    state = trainer.state
    if state.best_model_checkpoint is None:
        raise RuntimeError("training with a dev set kept no best checkpoint")
    stopped = patience is not None and state.global_step < state.max_steps and any(
        getattr(cb, "early_stopping_patience_counter", 0) >= patience for cb in trainer.callback_handler.callbacks)
    curve = learning_curve(state.log_history)
    ok, why = converged(curve, stopped_early=stopped)
    return {**info, "max_steps": int(state.max_steps), "epochs_run": round(float(state.epoch or 0.0), 4),
            "eval_steps": int(state.eval_steps), "patience": patience, "dev_rows": len(dev_dataset),
            "dev_seconds": round(sum(e.get("eval_runtime", 0.0) for e in state.log_history), 2),
            "curve": curve, "best_step": int(state.best_global_step), "best_dev_loss": float(state.best_metric),
            "stopped_early": bool(stopped), "converged": ok, "convergence_rule": why}


def train_info(model_dir: Path) -> dict | None:
    """What `_save` recorded about a model's training (rows, steps, loss, seconds); None if it has no record."""
    path = Path(model_dir) / "train_info.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _save(model, out: Path, info: dict) -> None:
    with atomic_dir(out) as tmp_out:
        model.save(str(tmp_out))
        write_json(tmp_out / "train_info.json", info)


def train_teacher(base: str, pairs: list[tuple[str, str]], spec: TrainSpec, out: Path,
                  dev_pairs: list[tuple[str, str]] | None = None) -> dict:
    """Fine-tune `base` on (expanded query, positive passage) pairs; save to `out` atomically.

    With `dev_pairs` (held-out pairs of the same kind), the dev loss is measured along the way, the best
    checkpoint by dev loss is what gets saved, and training stops early by `spec.patience`."""
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    if len(pairs) < spec.batch_size:
        raise DataError(f"teacher: {len(pairs)} training pairs, fewer than one batch of {spec.batch_size}")
    if dev_pairs is not None and len(dev_pairs) < 2:
        raise DataError(f"teacher: {len(dev_pairs)} dev pairs, give at least 2 (or none)")
    model = load_encoder(base)
    eval_len = model.max_seq_length
    model.max_seq_length = spec.max_seq_length
    dataset = Dataset.from_dict({"query": [q for q, _ in pairs], "positive": [p for _, p in pairs]})
    dev = None if dev_pairs is None else Dataset.from_dict(
        {"query": [q for q, _ in dev_pairs], "positive": [p for _, p in dev_pairs]})
    every = None if dev is None else eval_steps(len(pairs), spec)
    with tempfile.TemporaryDirectory() as tmp:
        fit = _fit(model, dataset, MultipleNegativesRankingLoss(model, scale=spec.scale), _args(spec, tmp, every),
                   dev, spec.patience)
    model.max_seq_length = eval_len
    info = {**fit, "pairs": len(pairs), "epochs": spec.epochs, "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate}
    _save(model, out, info)
    return info


def student_from_teacher(teacher_dir: Path):
    """A Router model: trainable query route (teacher copy) + frozen document route (the teacher)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Router

    teacher = load_encoder(str(teacher_dir))
    doc_modules = list(teacher.children())
    query_modules = [copy.deepcopy(m) for m in doc_modules]
    for m in doc_modules:
        for p in m.parameters():
            p.requires_grad_(False)
    router = Router.for_query_document(query_modules=query_modules, document_modules=doc_modules)
    return SentenceTransformer(modules=[router], device="cpu")


def student_dataset(queries: list[str], targets: np.ndarray, positives: np.ndarray):
    """Rows (query, label = [teacher(q+) ; doc(p+)]) for `SoftQELoss`'s precomputed-document form."""
    from datasets import Dataset

    if not (len(queries) == len(targets) == len(positives)):
        raise DataError(f"student: {len(queries)} queries, {len(targets)} targets, {len(positives)} positives")
    if targets.shape[1] != positives.shape[1]:
        raise DataError(f"student: targets have dim {targets.shape[1]}, positives {positives.shape[1]}")
    label = np.concatenate([targets, positives], axis=1).astype(np.float32)
    return Dataset.from_dict({"query": list(queries), "label": label})


def train_student(
    teacher_dir: Path, queries: list[str], targets: np.ndarray, positives: np.ndarray, spec: StudentSpec, out: Path,
    dev: tuple[list[str], np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Train the SoftQE query encoder on raw queries; save to `out` atomically.

    `targets` are teacher(q+) and `positives` doc(p+) embeddings from the frozen teacher (the
    vectors the student's index holds), one row per query. Rows whose positives are identical
    never share a batch (no false in-batch negatives). `dev` = (dev queries, their targets, their
    positives), held out: the same loss on them is the dev loss of the learning curve; the best
    checkpoint by it is what gets saved, and training stops early by `spec.patience`."""
    from ptlab.retrieval.softqe_loss import SoftQELoss

    if isinstance(spec.alpha, list):
        raise DataError(f"student: one alpha per student, got {spec.alpha} (use spec.with_alpha)")
    if len(queries) < spec.batch_size:
        raise DataError(f"student: {len(queries)} training rows, fewer than one batch of {spec.batch_size}")
    targets = np.asarray(targets, dtype=np.float32)
    positives = np.asarray(positives, dtype=np.float32)
    dataset = student_dataset(queries, targets, positives)
    dim = targets.shape[1]
    dev_dataset = None
    if dev is not None:
        dev_q, dev_t, dev_p = dev[0], np.asarray(dev[1], dtype=np.float32), np.asarray(dev[2], dtype=np.float32)
        if len(dev_q) < 2:
            raise DataError(f"student: {len(dev_q)} dev rows, give at least 2 (or none)")
        if dev_t.ndim != 2 or dev_t.shape[1] != dim:
            raise DataError(f"student: dev targets have shape {dev_t.shape}, the training targets dim {dim}")
        dev_dataset = student_dataset(list(dev_q), dev_t, dev_p)
    model = student_from_teacher(teacher_dir)
    eval_len = model.max_seq_length
    model.max_seq_length = spec.max_seq_length
    loss = SoftQELoss(model, alpha=spec.alpha, scale=spec.scale)
    every = None if dev_dataset is None else eval_steps(len(queries), spec)
    with tempfile.TemporaryDirectory() as tmp:
        args = _args(spec, tmp, every, router_mapping={"query": "query"},
                     batch_sampler=functools.partial(_no_duplicates_by_positive, dim))
        fit = _fit(model, dataset, loss, args, dev_dataset, spec.patience)
    model.max_seq_length = eval_len
    info = {**fit, "rows": len(queries), "alpha": spec.alpha, "epochs": spec.epochs, "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate}
    _save(model, out, info)
    return info
