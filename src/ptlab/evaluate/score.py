"""Scoring responses with the task verifiers, and the accuracy metrics built on them.

Pure functions over per-example records: `correct` (the verifier's verdict) and
`shortcut_agrees` (whether following the spurious shortcut gives the right
behaviour). *Spurious reliance* is accuracy where the shortcut agrees minus
accuracy where it conflicts: near 0 for a model that ignores the shortcut,
large and positive for one that follows it.
"""

from __future__ import annotations

import numpy as np


def score(task: str, rows: list[dict], responses: list[str]) -> list[dict]:
    """One record per row: id, split, correct, shortcut_agrees, response, and `value` (docqa's exact match)."""
    from ptlab.tasks import get_task

    verifier = get_task(task)
    out = []
    for row, response in zip(rows, responses, strict=True):
        verdict = verifier.verify_row(row, response)
        out.append({
            "id": row["id"],
            "split": row.get("split"),
            "correct": bool(verdict["correct"]),
            "shortcut_agrees": bool(row.get("shortcut_agrees", True)),
            "has_feature": bool(row.get("has_feature", False)),
            "response": response,
            "value": verdict.get("exact_match"),  # a secondary score where the task has one (docqa: exact match)
        })
    return out


def accuracy(correct) -> float:
    c = np.asarray(correct, dtype=float)
    return float(c.mean()) if c.size else float("nan")


def spurious_reliance(correct, shortcut_agrees) -> float:
    """acc(shortcut agrees) − acc(shortcut conflicts); NaN when either group is empty."""
    c = np.asarray(correct, dtype=float)
    a = np.asarray(shortcut_agrees, dtype=bool)
    if not a.any() or a.all():
        return float("nan")
    return float(c[a].mean() - c[~a].mean())
