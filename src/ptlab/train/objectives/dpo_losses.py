"""DPO loss variants, one small function each (TRL 1.16 DPOTrainer's `loss_type`s).

Each takes the pair scores `s` (see `PairScores`) and the parameters, and
returns the per-pair loss. Notation: β = beta, ε = label_smoothing,
Δ = s_w − s_l (chosen minus rejected score; the score is the log-ratio
log π/π_ref, or its f-divergence transform), r_w = log π(y_w) − log π_ref(y_w).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PairScores:
    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor
    ref_chosen_logps: torch.Tensor
    ref_rejected_logps: torch.Tensor
    chosen_scores: torch.Tensor
    rejected_scores: torch.Tensor
    chosen_len: torch.Tensor
    rejected_len: torch.Tensor

    @property
    def chosen_logratios(self):
        return self.chosen_logps - self.ref_chosen_logps

    @property
    def rejected_logratios(self):
        return self.rejected_logps - self.ref_rejected_logps

    @property
    def delta(self):
        return self.chosen_scores - self.rejected_scores


def sigmoid(s: PairScores, p) -> torch.Tensor:
    # DPO, Rafailov et al. 2023, Eq. 7:  −log σ(β Δ)
    return -F.logsigmoid(p.beta * s.delta)


def hinge(s, p):
    # SLiC, Zhao et al. 2023:  max(0, 1 − β Δ)
    return torch.relu(1 - p.beta * s.delta)


def ipo(s, p):
    # IPO, Azar et al. 2023, Eq. 17, on per-token averaged scores:  (Δ̄ − 1/(2β))²
    d = s.chosen_scores / s.chosen_len.clamp(min=1) - s.rejected_scores / s.rejected_len.clamp(min=1)
    return (d - 1 / (2 * p.beta)) ** 2


def exo_pair(s, p):
    # EXO, Ji et al. 2024, Eq. 16:  KL(softmax(βΔ) ‖ [1−ε, ε]) over {chosen, rejected}
    eps = torch.tensor(p.label_smoothing, device=s.delta.device)
    z = p.beta * s.delta
    return torch.sigmoid(z) * (F.logsigmoid(z) - torch.log1p(-eps)) + torch.sigmoid(-z) * (
        F.logsigmoid(-z) - torch.log(eps)
    )


def nca_pair(s, p):
    # NCA, Chen et al. 2024:  −log σ(β r_w) − ½ log σ(−β r_w) − ½ log σ(−β r_l)
    rw, rl = p.beta * s.chosen_logratios, p.beta * s.rejected_logratios
    return -F.logsigmoid(rw) - 0.5 * F.logsigmoid(-rw) - 0.5 * F.logsigmoid(-rl)


def robust(s, p):
    # Robust DPO, Chowdhury et al. 2024, Eq. 21:  ((1−ε)·(−log σ(βΔ)) + ε·log σ(−βΔ)) / (1 − 2ε)
    z = p.beta * s.delta
    eps = p.label_smoothing
    return (-(1 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1 - 2 * eps)


def bco_pair(s, p):
    # BCO (pairwise), Jung et al. 2024:  −log σ(β r_w) − log σ(−β r_l)
    return -F.logsigmoid(p.beta * s.chosen_logratios) - F.logsigmoid(-p.beta * s.rejected_logratios)


def sppo_hard(s, p):
    # SPPO with hard win probabilities, Wu et al. 2024, Eq. 4.7:  (r_w − 1/(2β))² + (r_l + 1/(2β))²
    return (s.chosen_logratios - 0.5 / p.beta) ** 2 + (s.rejected_logratios + 0.5 / p.beta) ** 2


def _smoothed(delta, p):
    return -F.logsigmoid(p.beta * delta) * (1 - p.label_smoothing) - F.logsigmoid(-p.beta * delta) * p.label_smoothing


def aot(s, p):
    # AOT (paired), Melnyk et al. 2024: sorted policy log-ratio gaps vs sorted reference gaps, within the batch
    policy = torch.sort(s.chosen_logps - s.rejected_logps, dim=0).values
    ref = torch.sort(s.ref_chosen_logps - s.ref_rejected_logps, dim=0).values
    return _smoothed(policy - ref, p)


def aot_unpaired(s, p):
    # AOT (unpaired): sorted chosen log-ratios vs sorted rejected log-ratios, within the batch
    chosen = torch.sort(s.chosen_logratios, dim=0).values
    rejected = torch.sort(s.rejected_logratios, dim=0).values
    return _smoothed(chosen - rejected, p)


def apo_zero(s, p):
    # APO-zero, D'Oosterlinck et al. 2024, Eq. 7:  (1 − σ(β r_w)) + σ(β r_l)
    return 1 - torch.sigmoid(p.beta * s.chosen_logratios) + torch.sigmoid(p.beta * s.rejected_logratios)


def apo_down(s, p):
    # APO-down, Eq. 8:  σ(β r_w) + (1 − σ(β (r_w − r_l)))
    rw, rl = s.chosen_logratios, s.rejected_logratios
    return torch.sigmoid(p.beta * rw) + 1 - torch.sigmoid(p.beta * (rw - rl))


def discopop(s, p):
    # DiscoPOP, Chris Lu et al. 2024, Eq. 5: logistic and exponential losses blended by σ(βΔ/τ)
    z = p.beta * s.delta
    mix = torch.sigmoid(z / p.discopop_tau)
    return -F.logsigmoid(z) * (1 - mix) + torch.exp(-z) * mix


def sigmoid_norm(s, p):
    # Length-normalised DPO:  −log σ(β (s_w/|y_w| − s_l/|y_l|))
    d = s.chosen_scores / s.chosen_len.clamp(min=1) - s.rejected_scores / s.rejected_len.clamp(min=1)
    return -F.logsigmoid(p.beta * d)


PAIR_LOSSES = {
    f.__name__: f
    for f in (
        sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, sppo_hard,
        aot, aot_unpaired, apo_zero, apo_down, discopop, sigmoid_norm,
    )
}
# "sft" is the NLL of the chosen completion, averaged over its tokens (see dpo.py).
LOSS_TYPES = sorted([*PAIR_LOSSES, "sft"])


def f_divergence_scores(logratios: torch.Tensor, kind: str, alpha: float) -> torch.Tensor:
    """f'(π/π_ref) for the f-divergence regulariser of f-DPO (Wang et al. 2023)."""
    if kind == "reverse_kl":
        return logratios
    if kind == "forward_kl":  # f'(t) = 1 − 1/t
        return 1 - torch.exp(-logratios)
    if kind == "js_divergence":  # f'(t) = log 2 + log σ(log t)
        return math.log(2) + F.logsigmoid(logratios)
    if kind == "alpha_divergence":  # f'(t) = (t^(α−1) − 1)/(α − 1)
        if abs(alpha - 1.0) < 1e-6:
            return logratios
        t = torch.clamp(((alpha - 1.0) * logratios).float(), max=80.0)
        return ((torch.exp(t) - 1.0) / (alpha - 1.0)).to(logratios.dtype)
    raise ValueError(kind)
