"""Supervised fine-tuning: negative log-likelihood of the completion tokens only.

    L_SFT = − (1 / Σ|y|) Σ_i Σ_t log π(y_i,t | x_i, y_i,<t)

averaged over every completion token of the step, as TRL's SFTTrainer does
with `completion_only_loss`.
"""

from __future__ import annotations

from ptlab.config import Strict
from ptlab.train.objectives.base import Batch, LossOut, Objective, Term


class SFTParams(Strict):
    pass


def sft_loss(batch: Batch, p: SFTParams) -> LossOut:
    pol = batch.policy
    nll = -pol.token_logps.sum()
    n = float(pol.token_logps.numel())
    return LossOut(
        terms=[Term(nll, "completion_tokens")],
        metrics={
            "nll": (nll.detach(), n),
            "mean_token_accuracy": (pol.argmax_hit.float().sum(), n),
        },
    )


SFT = Objective(
    name="sft",
    format="sft",
    uses_reference=False,
    params=SFTParams,
    fn=sft_loss,
    counts=lambda lengths, _: {"examples": float(lengths.numel()), "completion_tokens": float(lengths.sum())},
    doc="completion-only negative log-likelihood",
)
