"""KTO on unpaired (prompt, completion, label) rows (Ethayarajh et al. 2024, Eq. 7).

    r(x, y) = log π(y|x) − log π_ref(y|x)
    z₀      = max(0, mean over mismatched pairs (x_i, y_{i−1}) of r)       (detached)
    L       = mean_i  λ_D (1 − σ(β (r − z₀)))   for desirable y
                      λ_U (1 − σ(β (z₀ − r)))   for undesirable y

`apo_zero_unpaired` drops z₀:  λ_D (1 − σ(β r))  and  λ_U σ(β r).
The KL estimate z₀ is computed by the caller over the whole optimizer step and
passed in `batch.kl`, so it does not depend on micro-batching.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from ptlab.config import Strict
from ptlab.train.objectives.base import Batch, LossOut, Objective, Term, mean_metric


class KTOParams(Strict):
    loss_type: Literal["kto", "apo_zero_unpaired"] = "kto"
    beta: float = Field(0.1, gt=0)
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0


def kl_estimate(policy_kl_logps: torch.Tensor, ref_kl_logps: torch.Tensor) -> torch.Tensor:
    """z₀ = max(0, mean(log π − log π_ref)) on mismatched pairs, detached."""
    return (policy_kl_logps - ref_kl_logps).mean().detach().clamp(min=0)


def kto_loss(batch: Batch, p: KTOParams) -> LossOut:
    logps = batch.policy.sums()
    ref = batch.reference.sums().detach()
    logratios = logps - ref
    good = batch.labels.bool()
    # apo_zero_unpaired has no KL term; TRL neither estimates it nor logs it (kl = 0)
    use_kl = batch.kl is not None and p.loss_type == "kto"
    kl = batch.kl if use_kl else torch.zeros((), device=logps.device)
    if p.loss_type == "kto":
        chosen_losses = 1 - F.sigmoid(p.beta * (logratios[good] - kl))
        rejected_losses = 1 - F.sigmoid(p.beta * (kl - logratios[~good]))
    else:
        chosen_losses = 1 - F.sigmoid(p.beta * logratios[good])
        rejected_losses = F.sigmoid(p.beta * logratios[~good])
    total = p.desirable_weight * chosen_losses.sum() + p.undesirable_weight * rejected_losses.sum()
    rewards = p.beta * logratios.detach()
    metrics = {
        "rewards/chosen": mean_metric(rewards[good]),
        "rewards/rejected": mean_metric(rewards[~good]),
        "logps/chosen": mean_metric(logps.detach()[good]),
        "logps/rejected": mean_metric(logps.detach()[~good]),
        "kl": (kl.detach(), 1.0),
    }
    return LossOut([Term(total, "examples")], metrics)


KTO = Objective(
    name="kto",
    format="unpaired",
    uses_reference=True,
    params=KTOParams,
    fn=kto_loss,
    counts=lambda lengths, labels: {"examples": float(lengths.numel())},
    doc="Kahneman-Tversky optimisation on desirable/undesirable labels",
)
