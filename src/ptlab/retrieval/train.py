"""Train the two encoders of SoftQE with sentence-transformers' trainer.

- Teacher: the base encoder fine-tuned on (q+, positive passage) with
  `MultipleNegativesRankingLoss` (in-batch negatives; the no-duplicates sampler
  keeps a passage from being its own in-batch negative).
- Student: a `Router` model whose "query" route starts as a copy of the teacher
  and is trained on raw q with `SoftQELoss`, and whose "document" route *is*
  the teacher, frozen, so the student searches the teacher's document index.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path

import numpy as np
from pydantic import Field

from ptlab.atomic import atomic_dir
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
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the distillation (MSE) term")


def _args(spec: TrainSpec, out: str, **extra):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    return SentenceTransformerTrainingArguments(
        output_dir=out,
        num_train_epochs=spec.epochs,
        per_device_train_batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        warmup_ratio=spec.warmup_ratio,
        seed=spec.seed,
        data_seed=spec.seed,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        **extra,
    )


def _fit(model, dataset, loss, args) -> float:
    from sentence_transformers import SentenceTransformerTrainer

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    return float(trainer.train().training_loss)


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
        loss = _fit(model, dataset, MultipleNegativesRankingLoss(model, scale=spec.scale), _args(spec, tmp))
    model.max_seq_length = eval_len
    with atomic_dir(out) as tmp_out:
        model.save(str(tmp_out))
    return {"train_loss": loss, "pairs": len(pairs)}


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


def train_student(
    teacher_dir: Path, queries: list[str], positives: list[str], targets: np.ndarray, spec: StudentSpec, out: Path
) -> dict:
    """Train the SoftQE query encoder on raw queries toward teacher(q+) targets; save to `out`."""
    from datasets import Dataset

    from ptlab.retrieval.softqe_loss import SoftQELoss

    if not (len(queries) == len(positives) == len(targets)):
        raise DataError("student: queries, positives and targets differ in length")
    if len(queries) < spec.batch_size:
        raise DataError(f"student: {len(queries)} training rows, fewer than one batch of {spec.batch_size}")
    model = student_from_teacher(teacher_dir)
    eval_len = model.max_seq_length
    model.max_seq_length = spec.max_seq_length
    dataset = Dataset.from_dict({"query": queries, "positive": positives, "label": [t.tolist() for t in targets]})
    loss = SoftQELoss(model, alpha=spec.alpha, scale=spec.scale)
    with tempfile.TemporaryDirectory() as tmp:
        args = _args(spec, tmp, router_mapping={"query": "query", "positive": "document"})
        value = _fit(model, dataset, loss, args)
    model.max_seq_length = eval_len
    with atomic_dir(out) as tmp_out:
        model.save(str(tmp_out))
    return {"train_loss": value, "rows": len(queries), "alpha": spec.alpha}
