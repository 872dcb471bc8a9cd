"""CPO and SimPO: reference-free preference losses (TRL's CPOTrainer).

CPO (Xu et al. 2024):   L = −log σ(β (log π(y_w) − log π(y_l))) + α_NLL · NLL(y_w)
SimPO (Meng et al. 2024): the same with length-averaged log-probs and a target
margin γ:               L = −log σ(β (ḡ_w − ḡ_l) − γ),  no NLL term by default.
`alpha` ≠ 0 applies AlphaPO's reward r = (1 − p^(−α))/α. `ipo` and `simpo`
use length-averaged log-probs, as TRL does.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from ptlab.config import Strict
from ptlab.train.objectives.base import Batch, LossOut, Objective, Term, paired_counts
from ptlab.train.objectives.dpo import chosen_nll, preference_metrics


class CPOParams(Strict):
    loss_type: Literal["sigmoid", "hinge", "ipo", "simpo"] = "sigmoid"
    beta: float = Field(0.1, gt=0)
    label_smoothing: float = 0.0
    cpo_alpha: float = 1.0
    simpo_gamma: float = 0.5
    alpha: float = 0.0


class SimPOParams(CPOParams):
    loss_type: Literal["simpo"] = "simpo"
    beta: float = Field(2.0, gt=0)
    cpo_alpha: float = 0.0


def cpo_loss(batch: Batch, p: CPOParams) -> LossOut:
    pol = batch.policy
    seq = pol.means() if p.loss_type in ("ipo", "simpo") else pol.sums()
    chosen, rejected = seq.chunk(2)
    if p.alpha != 0.0:
        chosen_r = (1 - torch.exp(chosen).pow(-p.alpha)) / p.alpha
        rejected_r = (1 - torch.exp(rejected).pow(-p.alpha)) / p.alpha
    else:
        chosen_r, rejected_r = chosen, rejected
    logits = chosen_r - rejected_r
    if p.loss_type in ("sigmoid", "simpo"):
        if p.loss_type == "simpo":
            logits = logits - p.simpo_gamma / p.beta
        losses = -F.logsigmoid(p.beta * logits) * (1 - p.label_smoothing) - F.logsigmoid(
            -p.beta * logits
        ) * p.label_smoothing
    elif p.loss_type == "hinge":
        losses = torch.relu(1 - p.beta * logits)
    else:  # ipo
        losses = (logits - 1 / (2 * p.beta)) ** 2
    terms = [Term(losses.sum(), "examples")]
    nll, n_tokens = chosen_nll(pol)
    if p.cpo_alpha != 0:
        terms.append(Term(nll, "chosen_tokens", p.cpo_alpha))
    metrics = preference_metrics(
        p.beta * chosen_r.detach(), p.beta * rejected_r.detach(), chosen.detach(), rejected.detach(), pol
    )
    metrics["nll_loss"] = (nll.detach(), n_tokens)
    return LossOut(terms, metrics)


CPO = Objective(
    name="cpo", format="paired", uses_reference=False, params=CPOParams, fn=cpo_loss,
    counts=paired_counts, doc="contrastive preference optimisation (reference-free, + NLL)",
)
SIMPO = Objective(
    name="simpo", format="paired", uses_reference=False, params=SimPOParams, fn=cpo_loss,
    counts=paired_counts, doc="SimPO: length-averaged, reference-free, target margin γ",
)
