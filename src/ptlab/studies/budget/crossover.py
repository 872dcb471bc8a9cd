"""Where one strategy overtakes another along the budget ratio Q/|S| (a pure function).

Given the difference curve d(r) = accuracy(challenger) − accuracy(incumbent)
at budget ratios r, the crossover is where d turns positive *for good*: the
last upward sign change, found by linear interpolation in log r between the
two measured ratios around it. A curve can cross several times (noise, or a
real non-monotone effect); every sign change is reported, and the crossover
is the last upward one after which the challenger stays ahead up to the
largest ratio measured. Zero counts as "not ahead".

Statuses: ``crossover`` (ratio found inside the measured range), ``always``
(the challenger is ahead at every ratio: any crossover lies below the range),
``none`` (not ahead at the largest ratio: no crossover in range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Crossover:
    status: str  # "crossover" | "always" | "none"
    ratio: float | None  # the crossover ratio when status == "crossover"
    lo: float  # smallest ratio measured
    hi: float  # largest ratio measured
    crossings: tuple = field(default_factory=tuple)  # every sign change: (ratio, "up" | "down")

    def describe(self, challenger: str = "new_question", incumbent: str = "answer_augmentation") -> str:
        rng = f"Q/|S| in [{self.lo:g}, {self.hi:g}]"
        if self.status == "crossover":
            extra = f" (the curves cross {len(self.crossings)} times)" if len(self.crossings) > 1 else ""
            return f"{challenger} overtakes {incumbent} at Q/|S| ≈ {self.ratio:.3g}{extra}"
        if self.status == "always":
            return f"{challenger} is ahead of {incumbent} at every ratio measured ({rng}): any crossover lies below"
        return f"no crossover in range ({rng}): {challenger} is not ahead of {incumbent} at the largest ratio"

    def as_dict(self) -> dict:
        return {"status": self.status, "ratio": self.ratio, "lo": self.lo, "hi": self.hi,
                "crossings": [list(c) for c in self.crossings]}


def find_crossover(ratios, diff) -> Crossover:
    """The crossover of `diff` (challenger − incumbent) over `ratios` (> 0, any order; NaNs dropped)."""
    r = np.asarray(ratios, dtype=float)
    d = np.asarray(diff, dtype=float)
    if r.shape != d.shape:
        raise ValueError(f"ratios and diff differ in length ({r.size} and {d.size})")
    keep = ~(np.isnan(r) | np.isnan(d))
    r, d = r[keep], d[keep]
    if r.size == 0:
        raise ValueError("no finite points to find a crossover in")
    if (r <= 0).any():
        raise ValueError("ratios must be > 0 (they are interpolated in log space)")
    order = np.argsort(r, kind="stable")
    r, d = r[order], d[order]
    x = np.log(r)
    ahead = d > 0
    crossings = []
    for i in range(len(r) - 1):
        if ahead[i] == ahead[i + 1]:
            continue
        if d[i + 1] == d[i]:
            at = x[i]
        else:  # where the straight line between the two points meets zero (clamped: 0 counts as behind)
            at = x[i] + (0.0 - d[i]) * (x[i + 1] - x[i]) / (d[i + 1] - d[i])
        crossings.append((float(math.exp(at)), "up" if ahead[i + 1] else "down"))
    lo, hi = float(r[0]), float(r[-1])
    if not ahead[-1]:
        return Crossover("none", None, lo, hi, tuple(crossings))
    if ahead.all():
        return Crossover("always", None, lo, hi, tuple(crossings))
    return Crossover("crossover", crossings[-1][0], lo, hi, tuple(crossings))
