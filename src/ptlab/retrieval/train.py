"""Train the two encoders of SoftQE with sentence-transformers' trainer.

- Teacher: the base encoder fine-tuned on (q+, positive passage) with
  `MultipleNegativesRankingLoss` (in-batch negatives; the no-duplicates sampler
  keeps a passage from being its own in-batch negative).
- Student: a `Router` model whose "query" route starts as a copy of the teacher
  and is trained on raw q with `SoftQELoss`, and whose "document" route *is*
  the teacher, frozen, so the student searches the teacher's document index.
  Because that route is frozen, doc(p+) is passed in precomputed (the index's
  own vectors) and a student step encodes only the short raw queries.

Each saved model directory also holds `train_info.json` (rows, steps, loss, seconds).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
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
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(32, ge=2)
    learning_rate: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_seq_length: int = Field(128, ge=16, description="truncation while training (passages)")
    scale: float = Field(20.0, gt=0, description="inverse temperature of the contrastive loss")
    seed: int = 0


class StudentSpec(TrainSpec):
    """The student learns only short raw queries (doc(p+) comes precomputed), so its steps are cheap:
    more epochs, a larger batch (more in-batch negatives) and a higher learning rate than the teacher."""

    alpha: float | list[float] = Field(
        [0.0, 0.5, 1.0], description="weight of the distillation (MSE) term; a list trains one student per value")
    epochs: float = Field(3.0, gt=0)
    batch_size: int = Field(64, ge=2)
    learning_rate: float = Field(1e-4, gt=0)
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


def _args(spec: TrainSpec, out: str, **extra):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

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
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **{"batch_sampler": BatchSamplers.NO_DUPLICATES, **extra},
    )


def _no_duplicates_by(keys: list[str], dataset, **kwargs):
    """A no-duplicates batch sampler that also sees `keys` (e.g. which passage is each row's positive),
    so two queries with the same positive never meet in a batch, where one would be the other's negative."""
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    return NoDuplicatesBatchSampler(dataset.add_column("_positive_key", keys), **kwargs)


def _fit(model, dataset, loss, args) -> dict:
    from sentence_transformers import SentenceTransformerTrainer

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    t0 = time.perf_counter()
    out = trainer.train()
    return {"train_loss": float(out.training_loss), "steps": int(out.global_step),
            "seconds": round(time.perf_counter() - t0, 2)}


def train_info(model_dir: Path) -> dict | None:
    """What `_save` recorded about a model's training (rows, steps, loss, seconds); None if it has no record."""
    path = Path(model_dir) / "train_info.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _save(model, out: Path, info: dict) -> None:
    with atomic_dir(out) as tmp_out:
        model.save(str(tmp_out))
        write_json(tmp_out / "train_info.json", info)


def train_teacher(base: str, pairs: list[tuple[str, str]], spec: TrainSpec, out: Path) -> dict:
    """Fine-tune `base` on (expanded query, positive passage) pairs; save to `out` atomically."""
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    if len(pairs) < spec.batch_size:
        raise DataError(f"teacher: {len(pairs)} training pairs, fewer than one batch of {spec.batch_size}")
    model = load_encoder(base)
    eval_len = model.max_seq_length
    model.max_seq_length = spec.max_seq_length
    dataset = Dataset.from_dict({"query": [q for q, _ in pairs], "positive": [p for _, p in pairs]})
    with tempfile.TemporaryDirectory() as tmp:
        fit = _fit(model, dataset, MultipleNegativesRankingLoss(model, scale=spec.scale), _args(spec, tmp))
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
    teacher_dir: Path, queries: list[str], targets: np.ndarray, positives: np.ndarray, spec: StudentSpec, out: Path
) -> dict:
    """Train the SoftQE query encoder on raw queries; save to `out` atomically.

    `targets` are teacher(q+) and `positives` doc(p+) embeddings from the frozen teacher (the
    vectors the student's index holds), one row per query. Rows whose positives are identical
    never share a batch (no false in-batch negatives)."""
    from ptlab.retrieval.softqe_loss import SoftQELoss

    if isinstance(spec.alpha, list):
        raise DataError(f"student: one alpha per student, got {spec.alpha} (use spec.with_alpha)")
    if len(queries) < spec.batch_size:
        raise DataError(f"student: {len(queries)} training rows, fewer than one batch of {spec.batch_size}")
    targets = np.asarray(targets, dtype=np.float32)
    positives = np.asarray(positives, dtype=np.float32)
    dataset = student_dataset(queries, targets, positives)
    keys = [hashlib.sha1(row.tobytes()).hexdigest() for row in positives]
    model = student_from_teacher(teacher_dir)
    eval_len = model.max_seq_length
    model.max_seq_length = spec.max_seq_length
    loss = SoftQELoss(model, alpha=spec.alpha, scale=spec.scale)
    with tempfile.TemporaryDirectory() as tmp:
        args = _args(spec, tmp, router_mapping={"query": "query"},
                     batch_sampler=functools.partial(_no_duplicates_by, keys))
        fit = _fit(model, dataset, loss, args)
    model.max_seq_length = eval_len
    info = {**fit, "rows": len(queries), "alpha": spec.alpha, "epochs": spec.epochs, "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate}
    _save(model, out, info)
    return info
