"""What a report opens with: one `Finding` per claim the study tests, one `Check` per design check.

Plain, frozen data; `ptlab.report.document.Document.findings` / `.checks` render them
(a compact Markdown table, a styled HTML table with a labelled badge). The
numbers arrive already formatted (the study knows its units), e.g. effect
"+3.1 points", interval "[+0.4, +5.8]", p "0.012", p_adj "0.036".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive (underpowered)"
NO_EFFECT = "no effect (adequately powered)"
NOT_TESTED = "not tested"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NO_EFFECT, NOT_TESTED)


@dataclass(frozen=True)
class Finding:
    claim: str
    verdict: str  # one of VERDICTS
    effect: str = ""
    interval: str = ""
    p: str = ""  # raw p
    p_adj: str = ""  # Holm-adjusted within the claim's declared family
    detail: str = ""


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: not run / not applicable
    detail: str = ""

    @property
    def status(self) -> str:
        return check_status(self.passed)


@dataclass(frozen=True)
class Effect:
    """An effect with its 95% interval and standard error: what `ptlab.evaluate.power.verdict` reads."""

    value: float
    lo: float
    hi: float
    se: float

    @classmethod
    def from_interval(cls, value: float, lo: float, hi: float, z: float = 1.96) -> Effect:
        """From a 95% interval alone: se = (hi − lo) / (2·1.96), the normal approximation (used where a comparison
        gives only (diff, lo, hi), e.g. a bootstrap percentile interval; it is exact for a normal sampling
        distribution and close for the symmetric ones of mean differences over many examples).

        A zero-width interval means every resample gave the same value (no variation in the outcomes, e.g. every
        example scored 0 everywhere): it says nothing about the sampling error, so se is NaN and no power can be
        claimed from it."""
        width = float(hi) - float(lo)
        se = width / (2 * z) if math.isfinite(width) and width > 0 else float("nan")
        return cls(float(value), float(lo), float(hi), se)


def check_status(passed: bool | None) -> str:
    return "not run" if passed is None else "pass" if passed else "fail"


def fmt_mde(m: float, scale: float = 100.0, unit: str = "points") -> str:
    """'MDE 4.2 points', or why there is none (no variation in the outcomes)."""
    return f"MDE {m * scale:.1f} {unit}" if math.isfinite(m) else "MDE n/a (no variation in the outcomes)"


def fmt_p(p) -> str:
    """A p-value for a table: two significant digits, '<0.0001' below that, '' when missing."""
    if p is None:
        return ""
    p = float(p)
    if math.isnan(p):
        return ""
    return "<0.0001" if p < 1e-4 else f"{p:.2g}"
