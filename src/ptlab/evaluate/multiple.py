"""Multiple-comparison correction within declared families: Holm's step-down method.

A family is the set of tests that answer one question (e.g. every algorithm × rate cell of one claim); the
family-wise error rate is controlled within it. Holm (1979) is uniformly more powerful than Bonferroni and valid under
any dependence between the tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (monotone in the raw p, capped at 1).

    Sorted ascending p_(1) ≤ … ≤ p_(m): adj_(i) = max_{k ≤ i} min(1, (m − k + 1) · p_(k)); a test is rejected at
    family-wise level alpha iff adj < alpha (≤ for the usual convention). NaN entries stay NaN and are not counted in m.
    """
    p = np.asarray(pvalues, dtype=float)
    shape = p.shape
    p = p.reshape(-1)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out.reshape(shape)
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    idx = np.flatnonzero(ok)
    order = np.argsort(p[idx], kind="mergesort")
    scaled = (m - np.arange(m)) * p[idx][order]
    adj = np.minimum(1.0, np.maximum.accumulate(scaled))
    out[idx[order]] = adj
    return out.reshape(shape)


def family_label(values: dict) -> str:
    """'col=value, col=value' for one family's key."""
    return ", ".join(f"{k}={v}" for k, v in values.items())


def adjust_families(df: pd.DataFrame, family_cols: list[str], p_col: str = "p", out_col: str = "p_adj") -> pd.DataFrame:
    """A copy of `df` with `out_col` (Holm within each family) and `family` (readable: "col=value, col=value").

    Rows are grouped into families by `family_cols` (missing values form their own family); an empty list makes the
    whole frame one family, labelled "all". Row order and index are kept; NaN p-values stay NaN.
    """
    out = df.copy()
    family_cols = list(family_cols)
    missing = [c for c in [*family_cols, p_col] if c not in out.columns]
    if missing:
        raise KeyError(f"adjust_families: no column(s) {missing}")
    adj = np.full(len(out), np.nan)
    labels = np.empty(len(out), dtype=object)
    if not family_cols:
        adj[:] = holm(out[p_col].to_numpy(float))
        labels[:] = "all"
    elif len(out):
        positions = pd.RangeIndex(len(out))
        for key, rows in out.reset_index(drop=True).groupby(family_cols, sort=True, dropna=False).groups.items():
            key = key if isinstance(key, tuple) else (key,)
            pos = positions[rows]
            adj[pos] = holm(out[p_col].to_numpy(float)[pos])
            labels[pos] = family_label(dict(zip(family_cols, key)))
    out[out_col] = adj
    out["family"] = labels
    return out
