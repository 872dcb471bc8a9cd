"""One objective evaluation on tokenised rows: forward, reference, KL, loss terms.

Shared by the public `batch_loss` API and the training loop, so what the loop
optimises is exactly what `batch_loss` reports (and what the TRL parity tests check).
"""

from __future__ import annotations

import contextlib

import torch

from ptlab.data.batching import collate, collate_kl
from ptlab.data.tokenize import TokenizedRow
from ptlab.train.logps import SeqLogps, completion_logps
from ptlab.train.objectives import Batch, LossOut, Objective
from ptlab.train.objectives.kto import kl_estimate


def is_peft(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def reference_context(model):
    """The reference under LoRA is the base model with adapters disabled."""
    return model.disable_adapter() if is_peft(model) else contextlib.nullcontext()


@torch.no_grad()
def no_grad_logps(model, rows: list[TokenizedRow], pad_id: int, kl: bool = False, as_reference=False) -> SeqLogps:
    seqs = collate_kl(rows, pad_id) if kl else collate(rows, pad_id)
    device = next(model.parameters()).device
    ctx = reference_context(model) if as_reference else contextlib.nullcontext()
    with ctx:
        return completion_logps(model, seqs.input_ids.to(device), seqs.completion_mask.to(device)).detach()


def policy_logps(model, rows: list[TokenizedRow], pad_id: int) -> SeqLogps:
    seqs = collate(rows, pad_id)
    device = next(model.parameters()).device
    return completion_logps(model, seqs.input_ids.to(device), seqs.completion_mask.to(device))


def labels_of(rows: list[TokenizedRow], device=None) -> torch.Tensor | None:
    if rows[0].label is None:
        return None
    return torch.tensor([bool(r.label) for r in rows], device=device)


def counts_of(objective: Objective, rows: list[TokenizedRow]) -> dict[str, float]:
    """The objective's normalising counts for these rows, known before any forward."""
    lengths = torch.tensor([len(r.completions[s]) for s in range(len(rows[0].completions)) for r in rows])
    return objective.counts(lengths, labels_of(rows))


def evaluate_objective(
    objective: Objective,
    params,
    policy: SeqLogps,
    rows: list[TokenizedRow],
    reference: SeqLogps | None = None,
    kl: torch.Tensor | None = None,
) -> LossOut:
    batch = Batch(policy=policy, reference=reference, labels=labels_of(rows, policy.token_logps.device), kl=kl)
    return objective.fn(batch, params)


def needs_kl(objective: Objective, params) -> bool:
    """Only KTO's `kto` loss uses the KL estimate from mismatched pairs."""
    return objective.name == "kto" and getattr(params, "loss_type", None) == "kto"


def kto_kl(policy_kl: SeqLogps, reference_kl: SeqLogps) -> torch.Tensor:
    return kl_estimate(policy_kl.sums(), reference_kl.sums())
