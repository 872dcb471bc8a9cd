"""Did a run converge? Learning-curve points and a plateau check from a run's logged history.

A run that "did not move" an outcome must be told apart from one that had not
finished learning. The check is declared, not tuned: a run is flagged as still
improving when its mean training loss over the last quarter of its steps is more
than `tolerance` (relative) below the mean over the quarter before it.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 0.05  # relative drop between the last two quarters that still counts as a plateau


def still_improving(losses, tolerance: float = TOLERANCE) -> tuple[bool, float]:
    """(flag, relative drop of the mean loss from the third to the last quarter of the steps)."""
    x = np.asarray([v for v in losses if v is not None and np.isfinite(v)], dtype=float)
    if x.size < 8:
        return False, float("nan")
    q = x.size // 4
    before, last = x[-2 * q: -q].mean(), x[-q:].mean()
    scale = max(abs(before), 1e-8)
    drop = float((before - last) / scale)
    return bool(drop > tolerance), drop


def curve_points(history: list[dict], points: int) -> list[dict]:
    """`points` evenly spaced points of training: the mean training loss over each segment, and the objective's
    validation loss / reward accuracy logged at (or last before) the segment's end."""
    steps = [h for h in history if "loss" in h]
    if not steps or points <= 0:
        return []
    total = steps[-1]["step"]
    out = []
    for k in range(1, points + 1):
        end = round(total * k / points)
        start = round(total * (k - 1) / points)
        seg = [h["loss"] for h in steps if start < h["step"] <= end]
        evals = [h for h in history if "eval/loss" in h and h["step"] <= end]
        point = {"step": end, "train_loss": float(np.mean(seg)) if seg else float("nan")}
        if evals:
            point["eval_loss"] = evals[-1]["eval/loss"]
            if "eval/rewards/accuracies" in evals[-1]:
                point["eval_reward_accuracy"] = evals[-1]["eval/rewards/accuracies"]
        out.append(point)
    return out


def convergence_metrics(history: list[dict], points: int) -> dict:
    """What a cell stores about its training curve: `curve/<k>/<what>` and `train/still_improving`."""
    flag, drop = still_improving([h.get("loss") for h in history if "loss" in h])
    out: dict = {"train/still_improving": float(flag), "train/last_quarter_drop": drop}
    for k, p in enumerate(curve_points(history, points), start=1):
        out.update({f"curve/{k}/{key}": value for key, value in p.items()})
    if history and "loss" in history[0]:
        out["train/first_loss"] = history[0]["loss"]
    return out
