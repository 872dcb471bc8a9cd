"""Intervals and paired significance for per-query metric vectors (scipy).

Means get a percentile bootstrap interval; two systems on the same queries get
a paired bootstrap interval on the mean difference and a paired t-test p-value
(the test most IR toolkits report; per-query scores are bounded, and with
hundreds of queries the t approximation is sound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Paired:
    diff: Interval
    p_value: float


def mean_ci(x: np.ndarray, seed: int = 0, level: float = 0.95, n_resamples: int = 2000) -> Interval:
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]):
        return Interval(float(x.mean()), float(x.mean()), float(x.mean()))
    res = stats.bootstrap(
        (x,), np.mean, confidence_level=level, n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed)
    )
    return Interval(float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high))


def paired(a: np.ndarray, b: np.ndarray, seed: int = 0, level: float = 0.95) -> Paired:
    """System a minus system b on the same queries."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in shape: {a.shape} vs {b.shape}")
    d = a - b
    ci = mean_ci(d, seed=seed, level=level)
    p = 1.0 if np.all(d == 0) else float(stats.ttest_rel(a, b).pvalue)
    return Paired(diff=ci, p_value=p)
