"""The SoftQE objective, composed from two sentence-transformers losses.

    L = alpha * MSE(student(q), teacher(q+)) + (1 - alpha) * InfoNCE(student(q), doc(p+), in-batch negatives)

Both library losses expose `compute_loss_from_embeddings` for exactly this kind
of composition, so the batch is embedded once (`embed_columns`) and each term is
the library's own code. The library's `MSELoss` averages over embedding
dimensions; for unit-norm embeddings that is ||s - t||^2 / dim, three orders of
magnitude below the contrastive term, so the distillation term is multiplied by
`dim` (= mean squared L2 distance per query, what the paper's MSE measures).
"""

from __future__ import annotations

from torch import Tensor, nn

from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.sentence_transformer.losses import MSELoss, MultipleNegativesRankingLoss


class SoftQELoss(nn.Module):
    """Inputs: (query, positive) columns and a `label` column holding teacher(q+) embeddings."""

    def __init__(self, model, alpha: float = 0.5, scale: float = 20.0):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.model = model
        self.alpha = alpha
        self.distill = MSELoss(model)
        self.contrast = MultipleNegativesRankingLoss(model, scale=scale)
        self.dim = model.get_embedding_dimension()

    def forward(self, sentence_features, labels: Tensor) -> Tensor:
        query, positive = embed_columns(self.model, sentence_features)
        distill = self.distill.compute_loss_from_embeddings([query], [labels]) * self.dim
        contrast = self.contrast.compute_loss_from_embeddings([query, positive], labels)
        return self.alpha * distill + (1.0 - self.alpha) * contrast

    def get_config_dict(self) -> dict:
        return {"alpha": self.alpha, "scale": self.contrast.scale, "distill_scale": self.dim}
