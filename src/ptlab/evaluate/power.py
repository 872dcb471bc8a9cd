"""Power: the minimum detectable effect of a design, the power at an effect, and a verdict that weighs both.

A non-significant result only says "no effect" when the design could have seen one of the size that was claimed.
For an estimate with standard error `se` tested two-sided at level alpha, the minimum detectable effect (MDE) at a
power is (z_{1−α/2} + z_{power}) · se (normal reference; ≈ 2.80 · se at α = 0.05, power 0.8). With `df` (a
t-reference, e.g. `Effect.df` from `ptlab.evaluate.hierarchical`) the power is that of the two-sided t-test, the
noncentral t with noncentrality effect / se, and the MDE inverts it exactly (≈ (t_{1−α/2, df} + t_{power, df}) · se).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import optimize, stats

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
UNDERPOWERED = "inconclusive (underpowered)"
NO_EFFECT = "no effect (adequately powered)"
VERDICTS = (SUPPORTED, CONTRADICTED, UNDERPOWERED, NO_EFFECT)


def _t(df: float | None) -> bool:
    return df is not None and np.isfinite(df)


def power_at(effect: float, se: float, alpha: float = 0.05, df: float | None = None) -> float:
    """Power of a two-sided level-alpha test of 0 when the true effect is `effect` and the estimate has error `se`.

    Normal reference by default (both rejection tails counted); with df, the t-test (noncentral t).
    """
    if any(map(math.isnan, (effect, se, alpha))) or se < 0:
        return float("nan")
    if se == 0:
        return 1.0 if effect != 0 else float(alpha)
    nc = abs(effect) / se
    if _t(df):
        crit = stats.t.ppf(1 - alpha / 2, df)
        upper, lower = stats.nct.sf(crit, df, nc), stats.nct.cdf(-crit, df, nc)
        if math.isnan(upper):
            upper = 1 - stats.nct.cdf(crit, df, nc)
        return float(upper + (0.0 if math.isnan(lower) else lower))  # scipy's nct is NaN far in the tail
    crit = stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.sf(crit - nc) + stats.norm.cdf(-crit - nc))


def mde(se: float, alpha: float = 0.05, power: float = 0.8, df: float | None = None) -> float:
    """Minimum detectable effect (two-sided): the effect detected with probability `power` at level alpha.

    Normal: (z_{1−α/2} + z_{power}) · se (to within the far rejection tail, ~1e-6 at the defaults; solved exactly);
    with df: the exact inverse of the t-test's power (noncentral t).
    """
    if math.isnan(se) or se < 0:
        return float("nan")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha}, {power}")
    if se == 0:
        return 0.0
    f = lambda k: power_at(k, 1.0, alpha, df) - power  # power depends on effect / se only
    if f(0.0) >= 0:  # power ≤ alpha: even no effect is "detected" that often
        return 0.0
    q = (lambda x: stats.t.ppf(x, df)) if _t(df) else stats.norm.ppf
    hi = max(float(q(1 - alpha / 2) + q(power)), 1.0)
    while f(hi) < 0:
        hi *= 2
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-12, rtol=1e-12)) * se


def _get(effect, name: str, default=None):
    if isinstance(effect, Mapping):
        return effect.get(name, default)
    return getattr(effect, name, default)


def verdict(effect, p_adj: float, expected: float, alpha: float = 0.05, power: float = 0.8, direction: int = +1) -> str:
    """What a test says about a claimed effect: one of `VERDICTS`.

    effect: anything with value and se (lo, hi optional; df used when present and finite) — an
    `ptlab.evaluate.hierarchical.Effect`, a dataclass, a dict or a DataFrame row. p_adj: its (family-adjusted) p.
    expected: the effect size the claim reports (same units as value). direction: the claimed sign (+1 or −1).

    * "supported": p_adj < alpha and value has the claimed sign;
    * "contradicted": p_adj < alpha and the opposite sign;
    * otherwise "inconclusive (underpowered)" when mde(se) > |expected| (the design could not have detected an effect
      of the claimed size with the stated power), else "no effect (adequately powered)". A missing se or expected
      size cannot show power, so it reads as underpowered; a missing p reads as not significant.
    """
    value = float(_get(effect, "value", float("nan")))
    se = float(_get(effect, "se", float("nan")))
    df = _get(effect, "df", None)
    df = float(df) if df is not None and np.isfinite(float(df)) else None
    sign = 1 if direction >= 0 else -1
    p = float(p_adj) if p_adj is not None else float("nan")
    if p < alpha and not math.isnan(value):
        if value * sign > 0:
            return SUPPORTED
        if value * sign < 0:
            return CONTRADICTED
    m = mde(se, alpha=alpha, power=power, df=df)
    if math.isnan(m) or math.isnan(float(expected)) or m > abs(float(expected)):
        return UNDERPOWERED
    return NO_EFFECT
