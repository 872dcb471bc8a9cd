"""Learning-rate schedules: linear warm-up, then cosine / linear decay to 0, or constant.

The same formulas as transformers' `get_scheduler`, without importing its
trainer stack (which pulls in peft and every model family: seconds per run).
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, warmup: int, total: int, kind: str) -> float:
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def make_scheduler(optimizer, kind: str, warmup: int, total: int) -> LambdaLR:
    return LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total, kind))
