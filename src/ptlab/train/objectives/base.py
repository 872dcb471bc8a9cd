"""What an objective is: a pure function from log-probs to loss terms and metrics.

A loss is a list of `Term`s, each a *sum* over the micro-batch divided by a
*global* count (examples, or tokens of some kind) that the training loop adds
up over every micro-batch and process of the optimizer step. That makes the
loss of a step identical whether it runs as one batch, with gradient
accumulation, or split across processes. Metrics are (sum, count) pairs for the
same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ptlab.config import Strict
from ptlab.train.logps import SeqLogps

Format = Literal["sft", "paired", "unpaired"]


@dataclass
class Term:
    total: torch.Tensor  # sum over this micro-batch
    per: str  # key into the step's counts, e.g. "examples", "completion_tokens"
    weight: float = 1.0


@dataclass
class Batch:
    """What an objective sees: policy log-probs, reference log-probs, labels, context."""

    policy: SeqLogps
    reference: SeqLogps | None = None
    labels: torch.Tensor | None = None  # unpaired rows: True = desirable
    kl: torch.Tensor | None = None  # KTO: KL estimate for the whole step (detached)


@dataclass
class LossOut:
    terms: list[Term]
    metrics: dict[str, tuple[torch.Tensor, torch.Tensor | float]] = field(default_factory=dict)

    def reduce(self, counts: dict[str, float], scale: float = 1.0) -> torch.Tensor:
        """Σ weight · total / counts[per], times `scale` (the process count under DDP)."""
        loss = sum(t.weight * t.total / max(float(counts[t.per]), 1.0) for t in self.terms)
        return loss * scale


@dataclass(frozen=True)
class Objective:
    name: str
    format: Format
    uses_reference: bool
    params: type[Strict]
    fn: Callable[[Batch, Any], LossOut]
    counts: Callable[[torch.Tensor, torch.Tensor | None], dict[str, float]]  # (lengths, labels) -> counts
    doc: str = ""


def mean_metric(values: torch.Tensor) -> tuple[torch.Tensor, float]:
    values = values.detach()
    return values.sum(), float(values.numel())


def paired_counts(lengths: torch.Tensor, _labels: torch.Tensor | None = None) -> dict[str, float]:
    """Counts for a [chosen..., rejected...] batch from its completion lengths."""
    chosen, _rejected = lengths.chunk(2)
    return {"examples": float(chosen.numel()), "chosen_tokens": float(chosen.sum())}
