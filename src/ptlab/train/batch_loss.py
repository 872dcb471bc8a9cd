"""`batch_loss`: the loss and metrics of one batch of rows, as a library call."""

from __future__ import annotations

import torch

from ptlab.config import validate
from ptlab.data.tokenize import tokenize_rows
from ptlab.train.objectives import get_objective
from ptlab.train.step import counts_of, evaluate_objective, kto_kl, needs_kl, no_grad_logps, policy_logps


def batch_loss(
    model,
    tokenizer,
    rows: list[dict],
    objective: str,
    ref_model=None,
    max_length: int | None = None,
    **params,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss (with grad) and TRL-named metrics of `objective` on `rows`.

    `params` are the objective's parameters (`loss_type`, `beta`, `label_smoothing`,
    `ld_alpha`, …). Objectives that need a reference use `ref_model`, or, when it
    is None, the model itself — with adapters disabled under LoRA — as TRL does.
    KTO's mismatched pairs are formed within `rows`, as TRL does within a batch.
    """
    obj = get_objective(objective)
    p = validate(obj.params, params, source=f"{objective} params")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tok = tokenize_rows(tokenizer, rows, obj.format, max_length, kl_chunk=len(rows) if needs_kl(obj, p) else None)
    policy = policy_logps(model, tok, pad_id)
    reference = kl = None
    if obj.uses_reference:
        ref = ref_model if ref_model is not None else model
        as_ref = ref_model is None
        reference = no_grad_logps(ref, tok, pad_id, as_reference=as_ref)
        if needs_kl(obj, p):
            policy_kl = no_grad_logps(model, tok, pad_id, kl=True)
            kl = kto_kl(policy_kl, no_grad_logps(ref, tok, pad_id, kl=True, as_reference=as_ref))
    out = evaluate_objective(obj, p, policy, tok, reference, kl)
    loss = out.reduce(counts_of(obj, tok))
    metrics = {k: float(s) / max(float(c), 1e-12) for k, (s, c) in out.metrics.items() if float(c) > 0}
    if "rewards/chosen" in metrics and "rewards/rejected" in metrics and "rewards/margins" not in metrics:
        metrics["rewards/margins"] = metrics["rewards/chosen"] - metrics["rewards/rejected"]
    metrics["loss"] = float(loss.detach())
    return loss, metrics
