"""ORPO (Hong et al. 2024, Eqs. 4–7): NLL on the chosen response minus a log odds-ratio term.

    odds(y) = p(y) / (1 − p(y)),  p = exp(mean token log-prob)
    L = NLL(y_w) − β · log σ(log odds(y_w) − log odds(y_l))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from ptlab.config import Strict
from ptlab.train.objectives.base import Batch, LossOut, Objective, Term, mean_metric, paired_counts
from ptlab.train.objectives.dpo import chosen_nll, preference_metrics


class ORPOParams(Strict):
    beta: float = Field(0.1, gt=0)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x < 0, stable on both sides of −ln 2."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(batch: Batch, p: ORPOParams) -> LossOut:
    pol = batch.policy
    chosen, rejected = pol.means().float().chunk(2)
    log_odds = (chosen - rejected) - (log1mexp(chosen) - log1mexp(rejected))
    ratio = F.logsigmoid(log_odds)
    nll, n_tokens = chosen_nll(pol)
    terms = [Term(nll, "chosen_tokens"), Term(-p.beta * ratio.sum(), "examples")]
    metrics = preference_metrics(p.beta * chosen.detach(), p.beta * rejected.detach(), chosen.detach(),
                                 rejected.detach(), pol)
    metrics.update({
        "nll_loss": (nll.detach(), n_tokens),
        "log_odds_ratio": mean_metric(ratio),
        "log_odds_chosen": mean_metric(log_odds),
    })
    return LossOut(terms, metrics)


ORPO = Objective(
    name="orpo", format="paired", uses_reference=False, params=ORPOParams, fn=orpo_loss,
    counts=paired_counts, doc="odds-ratio preference optimisation (reference-free, + NLL)",
)
