"""Uncertainty for accuracy-type metrics: bootstrap intervals, seed aggregation, paired tests.

All pure functions over arrays of per-example outcomes. A cell's outcomes
form a matrix (seeds × examples); the evaluation examples are the same for
every seed and algorithm of a cell, so examples are resampled as whole
columns (keeping seeds together) and algorithms are compared pairwise on the
same examples.

These intervals hold the trained models fixed: training-seed variance is in
none of them (with several seeds, `seed_sd` reports the spread beside the
interval). They serve one model's evaluation (`ptlab eval`); a study's
intervals and tests come from `ptlab.evaluate.hierarchical`, which puts seed
and example variance together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    value: float
    lo: float
    hi: float
    n: int  # examples
    seeds: int = 1
    seed_sd: float = float("nan")  # spread of the per-seed values

    def as_dict(self) -> dict:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n, "seeds": self.seeds,
                "seed_sd": self.seed_sd}


def _matrix(values) -> np.ndarray:
    m = np.asarray(values, dtype=float)
    return m[None, :] if m.ndim == 1 else m


def bootstrap_columns(statistic, *matrices, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `statistic(*matrices)` under resampling of example columns.

    `statistic` takes arrays of shape (..., seeds, examples) and reduces the last
    two axes; all matrices share their example columns (resampled together).
    """
    ms = [_matrix(m) for m in matrices]
    n = ms[0].shape[-1]
    if n == 0:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    boots = statistic(*[m[:, idx].transpose(1, 0, 2) for m in ms])  # (B, seeds, n) each
    alpha = (1 - confidence) / 2
    if np.isnan(boots).all():
        return float("nan"), float("nan")
    lo, hi = np.nanpercentile(boots, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def _mean(m):
    return np.nanmean(m, axis=(-2, -1))


def mean_ci(values, **kw) -> Estimate:
    """Mean of a (seeds × examples) or (examples,) array with a bootstrap interval over examples."""
    m = _matrix(values)
    lo, hi = bootstrap_columns(_mean, m, **kw)
    per_seed = m.mean(axis=1)
    sd = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan")
    return Estimate(float(m.mean()) if m.size else float("nan"), lo, hi, m.shape[1], m.shape[0], sd)


def _reliance(correct, agrees):
    a = agrees.astype(bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        on = np.where(a, correct, 0).sum(axis=(-2, -1)) / a.sum(axis=(-2, -1))
        off = np.where(~a, correct, 0).sum(axis=(-2, -1)) / (~a).sum(axis=(-2, -1))
    return on - off


def reliance_ci(correct, agrees, **kw) -> Estimate:
    """Spurious reliance (acc where the shortcut agrees − where it conflicts) with a bootstrap interval."""
    c, a = _matrix(correct), _matrix(agrees)
    a = np.broadcast_to(a, c.shape)
    value = float(_reliance(c, a))
    lo, hi = bootstrap_columns(_reliance, c, a, **kw)
    per_seed = np.array([_reliance(c[i:i + 1], a[i:i + 1]) for i in range(c.shape[0])])
    sd = float(np.nanstd(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan")
    return Estimate(value, lo, hi, c.shape[1], c.shape[0], sd)


@dataclass(frozen=True)
class Comparison:
    diff: float  # mean(a) − mean(b)
    lo: float
    hi: float
    p: float
    paired: bool
    n: int

    def as_dict(self) -> dict:
        return {"diff": self.diff, "lo": self.lo, "hi": self.hi, "p": self.p, "paired": self.paired, "n": self.n}


def compare(a, b, paired: bool = True, n_resamples: int = 9999, seed: int = 0) -> Comparison:
    """Difference in mean accuracy between a and b, each (seeds × examples) or (examples,).

    Paired (the same examples in the same order): a sign-flip permutation test on
    the per-example differences of seed-averaged outcomes (for one seed of 0/1
    outcomes this is an exact-in-the-limit McNemar-type test) and a bootstrap
    interval over examples. Unpaired: a permutation test and bootstrap over both groups.
    """
    ea, eb = _matrix(a).mean(axis=0), _matrix(b).mean(axis=0)
    rng = np.random.default_rng(seed)
    if paired:
        if ea.shape != eb.shape:
            raise ValueError(f"paired comparison needs the same examples (got {ea.size} and {eb.size})")
        d = ea - eb
        diff = float(d.mean())
        if np.allclose(d, 0):
            return Comparison(0.0, 0.0, 0.0, 1.0, True, d.size)
        res = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=n_resamples,
                                     vectorized=True, random_state=rng)
        lo, hi = bootstrap_columns(_mean, d, seed=seed)
        return Comparison(diff, lo, hi, float(res.pvalue), True, d.size)
    diff = float(ea.mean() - eb.mean())
    res = stats.permutation_test((ea, eb), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                 permutation_type="independent", n_resamples=n_resamples, vectorized=True,
                                 random_state=rng)
    ba = ea[rng.integers(0, ea.size, (N_RESAMPLES, ea.size))].mean(axis=1)
    bb = eb[rng.integers(0, eb.size, (N_RESAMPLES, eb.size))].mean(axis=1)
    lo, hi = np.percentile(ba - bb, [2.5, 97.5])
    return Comparison(diff, float(lo), float(hi), float(res.pvalue), False, min(ea.size, eb.size))


def mcnemar(a, b) -> float:
    """Exact McNemar p-value for two paired 0/1 outcome vectors (binomial test on discordant pairs)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    n01, n10 = int((~a & b).sum()), int((a & ~b).sum())
    if n01 + n10 == 0:
        return 1.0
    return float(stats.binomtest(n10, n01 + n10, 0.5).pvalue)


def significance_mark(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""
