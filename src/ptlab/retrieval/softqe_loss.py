"""The SoftQE objective, composed from two sentence-transformers losses.

    L = alpha * MSE(student(q), teacher(q+)) + (1 - alpha) * InfoNCE(student(q), doc(p+), in-batch negatives)

Both library losses expose `compute_loss_from_embeddings` for exactly this kind
of composition, so each term is the library's own code. The library's `MSELoss`
averages over embedding dimensions; for unit-norm embeddings that is
||s - t||^2 / dim, three orders of magnitude below the contrastive term, so the
distillation term is multiplied by `dim` (= mean squared L2 distance per query,
what the paper's MSE measures).

The document route of the student is the frozen teacher, so doc(p+) does not
change during training. The loss therefore takes it in one of two forms:

- precomputed (what `train_student` uses): a single `query` column, and a
  `label` column of width 2*dim holding [teacher(q+) ; doc(p+)]. A step then
  encodes only the ~16-token queries.
- re-encoded: `query` and `positive` columns and a `label` column holding
  teacher(q+); doc(p+) is embedded by the model's document route every step
  (the original formulation; same value when doc(p+) matches, see the tests).
"""

from __future__ import annotations

from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.sentence_transformer.losses import MSELoss, MultipleNegativesRankingLoss
from torch import Tensor, nn


class SoftQELoss(nn.Module):
    """Inputs: `query` (+ optional `positive`) columns; `label` = teacher(q+) [; doc(p+) when no positive column]."""

    def __init__(self, model, alpha: float = 0.5, scale: float = 20.0):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.model = model
        self.alpha = alpha
        self.distill = MSELoss(model)
        self.contrast = MultipleNegativesRankingLoss(model, scale=scale)
        self.dim = model.get_embedding_dimension()

    def split_labels(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        """[teacher(q+) ; doc(p+)] rows -> (teacher(q+), doc(p+))."""
        if labels.ndim != 2 or labels.shape[1] != 2 * self.dim:
            raise ValueError(f"SoftQELoss: with a query column only, labels must be (batch, {2 * self.dim}) = "
                             f"[teacher(q+) ; doc(p+)], got {tuple(labels.shape)}")
        return labels[:, : self.dim], labels[:, self.dim :]

    def forward(self, sentence_features, labels: Tensor) -> Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        query = embeddings[0]
        if len(embeddings) == 1:
            targets, positive = self.split_labels(labels)
            positive = positive.to(device=query.device, dtype=query.dtype)
        elif len(embeddings) == 2:
            targets, positive = labels, embeddings[1]
        else:
            raise ValueError(f"SoftQELoss: expected a query (and optionally a positive) column, got {len(embeddings)}")
        distill = self.distill.compute_loss_from_embeddings([query], [targets]) * self.dim
        contrast = self.contrast.compute_loss_from_embeddings([query, positive], labels)
        return self.alpha * distill + (1.0 - self.alpha) * contrast

    def get_config_dict(self) -> dict:
        return {"alpha": self.alpha, "scale": self.contrast.scale, "distill_scale": self.dim}
