"""DPO and its loss family on (prompt, chosen, rejected) pairs, against a reference model.

Scores are summed completion log-probs; with `ld_alpha` (LD-DPO, Liu et al.
2024) tokens past the shorter completion's length count with weight α:

    log π̂(y) = Σ_{t ≤ min(|y_w|,|y_l|)} log π(y_t) + α Σ_{t > min} log π(y_t)

`loss_type` may be a list with `loss_weights`: the loss is Σ_k w_k · mean_pairs L_k.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator, model_validator

from ptlab.config import Strict
from ptlab.train.logps import SeqLogps
from ptlab.train.objectives.base import Batch, LossOut, Objective, Term, mean_metric, paired_counts
from ptlab.train.objectives.dpo_losses import LOSS_TYPES, PAIR_LOSSES, PairScores, f_divergence_scores


class DPOParams(Strict):
    loss_type: str | list[str] = "sigmoid"
    loss_weights: list[float] | None = None
    beta: float = Field(0.1, gt=0)
    label_smoothing: float = 0.0
    ld_alpha: float | None = None
    f_divergence_type: Literal["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"] = "reverse_kl"
    f_alpha_divergence_coef: float = 1.0
    discopop_tau: float = 0.05

    @field_validator("loss_type")
    @classmethod
    def _known(cls, v):
        for name in [v] if isinstance(v, str) else v:
            if name not in LOSS_TYPES:
                raise ValueError(f"unknown loss_type {name!r}; choose from {', '.join(LOSS_TYPES)}")
        return v

    @model_validator(mode="after")
    def _weights(self):
        types = self.loss_types
        if self.loss_weights is not None and len(self.loss_weights) != len(types):
            raise ValueError(f"loss_weights has {len(self.loss_weights)} entries for {len(types)} loss types")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError("label_smoothing must be in [0, 0.5)")
        if "exo_pair" in types and self.label_smoothing == 0:
            raise ValueError("loss_type exo_pair needs label_smoothing > 0 (e.g. 1e-3)")
        return self

    @property
    def loss_types(self) -> list[str]:
        return [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)

    @property
    def weights(self) -> list[float]:
        return self.loss_weights or [1.0] * len(self.loss_types)


def ld_weights(lp: SeqLogps, ld_alpha: float | None) -> torch.Tensor | None:
    """Token weights for LD-DPO: 1 within the pair's shared length, α beyond it."""
    if ld_alpha is None:
        return None
    chosen_len, rejected_len = lp.lengths.chunk(2)
    shared = torch.minimum(chosen_len, rejected_len).repeat(2)
    inside = lp.pos < shared[lp.seq_id]
    return torch.where(inside, 1.0, ld_alpha).to(lp.token_logps.dtype)


def pair_scores(batch: Batch, p: DPOParams) -> PairScores:
    pol, ref = batch.policy, batch.reference
    chosen, rejected = pol.sums(ld_weights(pol, p.ld_alpha)).chunk(2)
    ref_chosen, ref_rejected = ref.sums(ld_weights(ref, p.ld_alpha)).detach().chunk(2)
    chosen_len, rejected_len = pol.lengths.chunk(2)
    f = lambda lr: f_divergence_scores(lr, p.f_divergence_type, p.f_alpha_divergence_coef)
    return PairScores(
        chosen, rejected, ref_chosen, ref_rejected,
        f(chosen - ref_chosen), f(rejected - ref_rejected),
        chosen_len.to(chosen.dtype), rejected_len.to(chosen.dtype),
    )


def chosen_nll(pol: SeqLogps) -> tuple[torch.Tensor, float]:
    """Σ −log π over the chosen completions' tokens (the first half of the batch)."""
    n_chosen = pol.n_seqs // 2
    mask = pol.seq_id < n_chosen
    return -pol.token_logps[mask].sum(), float(mask.sum())


def preference_metrics(chosen_rewards, rejected_rewards, chosen_logps, rejected_logps, pol: SeqLogps) -> dict:
    """TRL's metric names for paired objectives."""
    n_chosen = pol.n_seqs // 2
    chosen_tok = pol.seq_id < n_chosen
    return {
        "rewards/chosen": mean_metric(chosen_rewards),
        "rewards/rejected": mean_metric(rejected_rewards),
        "rewards/accuracies": mean_metric((chosen_rewards > rejected_rewards).float()),
        "rewards/margins": mean_metric(chosen_rewards - rejected_rewards),
        "logps/chosen": mean_metric(chosen_logps),
        "logps/rejected": mean_metric(rejected_logps),
        "mean_token_accuracy": (pol.argmax_hit[chosen_tok].float().sum(), float(chosen_tok.sum())),
    }


def dpo_loss(batch: Batch, p: DPOParams) -> LossOut:
    s = pair_scores(batch, p)
    terms = []
    for loss_type, weight in zip(p.loss_types, p.weights):
        if loss_type == "sft":
            nll, _ = chosen_nll(batch.policy)
            terms.append(Term(nll, "chosen_tokens", weight))
        else:
            terms.append(Term(PAIR_LOSSES[loss_type](s, p).sum(), "examples", weight))
    metrics = preference_metrics(
        p.beta * s.chosen_logratios.detach(), p.beta * s.rejected_logratios.detach(),
        s.chosen_logps.detach(), s.rejected_logps.detach(), batch.policy,
    )
    return LossOut(terms, metrics)


DPO = Objective(
    name="dpo",
    format="paired",
    uses_reference=True,
    params=DPOParams,
    fn=dpo_loss,
    counts=paired_counts,
    doc="DPO and its loss family (loss_type), against a frozen reference",
)
