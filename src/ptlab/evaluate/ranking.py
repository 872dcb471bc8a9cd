"""Ranking accuracy on held-out preference pairs.

Two views, per pair: `rank` — the model gives the chosen response a higher
total log-probability than the rejected one (the likelihood ranking of
Chen et al., 2024); `reward` — DPO's implicit reward ranks them correctly,
log π(y_w)/π_ref(y_w) > log π(y_l)/π_ref(y_l) (TRL's `rewards/accuracies`),
which needs the reference (base) model.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def pair_logps(model, tokenizer, rows: list[dict], max_length: int | None = None, batch_size: int = 64) -> np.ndarray:
    """(N, 2) summed completion log-probs of (chosen, rejected) for each paired row."""
    from ptlab.data.tokenize import tokenize_rows
    from ptlab.train.step import no_grad_logps

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        part = rows[start: start + batch_size]
        tok = tokenize_rows(tokenizer, [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in part],
                            "paired", max_length)
        sums = no_grad_logps(model, tok, pad_id).sums().double().cpu().numpy()
        out.append(np.stack([sums[: len(part)], sums[len(part):]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2))


def ranking_correct(policy: np.ndarray, reference: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-pair booleans `rank` (policy alone) and, given a reference, `reward` (implicit reward), with the
    margins they threshold: `rank_margin` = log π(y_w) − log π(y_l), `reward_margin` the implicit reward's."""
    margin = policy[:, 0] - policy[:, 1]
    out = {"rank": margin > 0, "rank_margin": margin}
    if reference is not None:
        reward = (policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1])
        out.update({"reward": reward > 0, "reward_margin": reward})
    return out
