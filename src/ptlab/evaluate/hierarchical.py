"""Intervals and tests that include training-seed variance: (seeds × examples) outcomes, seeds and examples crossed.

A study's outcomes for one condition form a matrix: row i is training seed i (a separately trained model), column j
evaluation example j (the same examples for every seed). Two sources of variance enter any estimate: which seeds were
trained and which examples were drawn. `ptlab.evaluate.stats` resamples example columns only, so its intervals hold
the trained models fixed; the functions here let both enter.

Conventions
-----------
* `groups` is a list of lists of matrices. Matrices in one group share their example columns (paired on examples:
  column j of each is the same item, e.g. a model and its base, or counterfactual twins); different groups hold
  different examples. Every matrix has S rows (one per training seed) or 1 row: a 1-row matrix is a deterministic
  condition (an untrained base decoded greedily) that is broadcast over seeds and never resampled over seeds.
* Seed i of every S-row matrix is the same training seed / data draw, so seeds stay paired by row index.
* With S = 1 no seed variance can be estimated: the interval is an example-only interval that holds the model fixed.

Method, and why (measured, not assumed)
---------------------------------------
The design is crossed (every seed sees every example). For the linear statistics used here (means, differences,
differences-in-differences), with y_ij = mu + a_i + b_j + e_ij (e carries Bernoulli noise and seed × item
interaction), the variance of the estimate is

    Var = sigma_seed^2 / S + sigma_example^2 / n + sigma_residual^2 / (S n),

estimated without bias by (MS_seed + MS_example − MS_residual) / (S n) from the two-way ANOVA mean squares. We
split it as

    V = V_seeds + max(0, V_examples − V_residual)

* V_seeds = var(seed_values) / S = MS_seed / (S n): the spread of the per-seed effects — seed variance together with
  each seed's own example noise, estimated with S − 1 degrees of freedom (it is a seed-level t-test's variance);
* V_examples − V_residual = (MS_example − MS_residual) / (S n): the example variance common to every seed, which the
  seed-level spread cannot see (V_examples = MS_example / (S n) is what `stats.mean_ci` bootstraps, seeds fixed).

The interval is value ± t_{df} · sqrt(V), the p-value the matching two-sided t-test, with Satterthwaite's df
V² / (V_seeds² / (S − 1) + V_ex² / (n − 1) + V_res² / ((S − 1)(n − 1))) in which V_seeds is taken at its 70% upper
confidence bound V_seeds · (S − 1) / chi2_{S−1}(0.3) (`DF_QUANTILE`): Satterthwaite's df estimated from data is
known to be liberal when the dominant component has 2–4 df (seeds that agree by chance also look like many df);
this guard costs up to ~15% width at S = 3 and ~4% at S = 5. With the seed term dominating, df → S − 1 (t_{2,.975} = 4.30).
For `mean_effect`, `difference` and `did_effect` the components are computed in closed form (= infinitely many
bootstrap resamples, no Monte-Carlo noise); for an arbitrary statistic `effect` estimates V_examples and V_residual
from an example-column bootstrap of the pooled and the per-seed statistic (the delta-method analogue).

Measured coverage of 95% intervals: items p_j ~ Beta(3, 2), seed shift N(0, tau²) on the logit (conditions share half
of it), Bernoulli outcomes, a 1-row base without seed shift; true effects by quadrature; 2000 replicates per cell
(Monte-Carlo sd ≈ 0.005). "naive" is the two-level percentile bootstrap (`hierarchical_bootstrap`, seeds then
examples, 1000 resamples):

    S  n    tau    mean   diff   DiD    DiD unpaired | naive: mean  diff
    3  80   0      0.960  0.961  0.958  0.956        |        0.989  0.994
    3  80   0.25   0.957  0.961  0.960  0.953        |        0.962  0.986
    3  80   0.5    0.943  0.954  0.958  0.961        |        0.915  0.945
    3  80   1.0    0.933  0.956  0.950  0.946        |        0.822  0.861
    3  120  0      0.960  0.964  0.957  0.961        |        0.990  0.997
    3  120  0.5    0.943  0.960  0.960  0.955        |        0.894  0.928
    3  120  1.0    0.936  0.951  0.948  0.942        |        0.799  0.834
    5  80   0      0.961  0.961  0.952  0.954        |        0.993  0.996
    5  80   0.5    0.945  0.938  0.957  0.948        |        0.938  0.960
    5  80   1.0    0.938  0.947  0.954  0.946        |        0.887  0.907
    5  120  0      0.951  0.960  0.945  0.947        |        0.987  0.999
    5  120  0.5    0.951  0.952  0.951  0.951        |        0.932  0.951
    5  120  1.0    0.939  0.950  0.952  0.952        |        0.873  0.897

The naive bootstrap under-covers once seeds vary (resampling 3 seeds with replacement keeps only (S−1)/S of their
variance, has 10 distinct seed multisets, and a percentile interval ignores that a variance from 3 seeds has 2 df)
and over-covers without seed variance (resampling rows and columns both counts the residual noise three times).
Inflating seed deviations by sqrt(S / (S − 1)) before resampling fixes only the first factor (measured with
Beta(2, 2) items, n = 80, 1000 replicates: S = 3, tau = 0.5 / 1.0: 0.900 / 0.871; tau = 0: 0.988). Two variants of
the chosen method were measured and rejected: flooring V at V_examples (seed part max(0, V_seeds − V_residual), as
if the seed spread could not fall below its example noise) over-covers at tau = 0 (0.98–0.99 for differences: A/A
tests reject 1–2% of the time) and is liberal exactly when seeds agree by chance (A/A, S = 3, tau = 0.4, different
example sets: 21% rejections among the replicates where the floor bound); plain Satterthwaite df without the
guard gives 0.920–0.935 at S = 3, tau ≥ 0.5 (n = 80, 120). A/A tests reject at about the nominal rate
(tests/evaluate/test_aa.py); the coverage tests are in tests/evaluate/test_hierarchical.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000
DF_QUANTILE = 0.3  # Satterthwaite's df use the seed variance at its (1 − DF_QUANTILE) upper confidence bound
_CHUNK = 4_000_000  # elements gathered at a time when resampling


@dataclass(frozen=True)
class Effect:
    value: float  # point estimate on the original data
    lo: float  # confidence interval (95% unless asked otherwise)
    hi: float
    p: float  # two-sided p-value for value == 0 (nan for a plain mean)
    se: float  # standard error, seed and example variance together
    seeds: int  # training seeds that entered
    n: int  # example columns (summed over groups of different examples)
    seed_values: tuple[float, ...]  # the statistic on each seed alone (1-row matrices broadcast)
    df: float = float("inf")  # degrees of freedom of the t reference (Satterthwaite); inf = normal
    seed_share: float = 0.0  # share of the variance that comes from training seeds (beyond their example noise)

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["seed_values"] = list(self.seed_values)
        return d


def _prepare(groups) -> tuple[list[list[np.ndarray]], int]:
    """Matrices as 2-D float arrays; checks shapes; returns (groups, S)."""
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("groups must be a non-empty list of non-empty lists of matrices")
    out, rows = [], set()
    for g in groups:
        ms = []
        for m in g:
            m = np.asarray(m, dtype=float)
            m = m[None, :] if m.ndim == 1 else m
            if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
                raise ValueError(f"every matrix must be non-empty (seeds × examples), got shape {m.shape}")
            ms.append(m)
        if len({m.shape[1] for m in ms}) != 1:
            raise ValueError(f"matrices of one group share their examples, got {[m.shape for m in ms]}")
        rows |= {m.shape[0] for m in ms if m.shape[0] > 1}
        out.append(ms)
    if len(rows) > 1:
        raise ValueError(f"every multi-seed matrix needs the same seeds (rows), got {sorted(rows)}")
    return out, rows.pop() if rows else 1


def _draws(groups, S: int, n_resamples: int, seed: int, resample_seeds: bool, resample_examples: bool):
    """Yield chunks of resampled matrices (each (b, rows, n_g)), in the flattened order of `groups`.

    One seed index (B, S) shared by every S-row matrix; one column index (B, n_g) per group. All indices are drawn
    up front, so the draws do not depend on the chunk size.
    """
    rng = np.random.default_rng(seed)
    B = n_resamples
    seed_idx = rng.integers(0, S, (B, S)) if resample_seeds and S > 1 else np.broadcast_to(np.arange(S), (B, S))
    col_idx = [rng.integers(0, g[0].shape[1], (B, g[0].shape[1])) if resample_examples
               else np.broadcast_to(np.arange(g[0].shape[1]), (B, g[0].shape[1])) for g in groups]
    width = S * sum(len(g) * g[0].shape[1] for g in groups)
    step = max(1, _CHUNK // max(width, 1))
    for start in range(0, B, step):
        sl = slice(start, min(B, start + step))
        chunk = []
        for g, ci in zip(groups, col_idx):
            cols = ci[sl][:, None, :]
            for m in g:
                rows = seed_idx[sl][:, :, None] if m.shape[0] == S else np.zeros((1, 1, 1), int)
                chunk.append(m[rows, cols])
        yield chunk


def hierarchical_bootstrap(statistic, groups, n_resamples: int = N_RESAMPLES, seed: int = 0, *,
                           resample_seeds: bool = True, resample_examples: bool = True) -> np.ndarray:
    """Draws of statistic(*resampled_matrices) (the matrices of `groups` flattened in order).

    groups: list of lists of matrices, each of shape (S, n_g) or (1, n_g) (a 1-row matrix is a deterministic
    condition such as an untrained base evaluated greedily: its row is never resampled). Seeds (rows) are resampled
    with replacement with ONE index shared by every S-row matrix of every group (seed i of every condition is the
    same training seed / data draw, so they stay paired). Example columns are resampled with replacement with one
    index per group (matrices within a group are paired on examples; different groups hold different examples and
    are resampled independently). statistic receives arrays of shape (B, rows, n_g) and returns (B,).

    This is the naive two-level percentile bootstrap; with 3–5 seeds its percentiles are not a calibrated interval
    (see the module docstring) — `effect` gives one. resample_seeds / resample_examples switch a level off.
    """
    groups, S = _prepare(groups)
    parts = [np.asarray(statistic(*chunk), dtype=float).reshape(-1)
             for chunk in _draws(groups, S, n_resamples, seed, resample_seeds, resample_examples)]
    return np.concatenate(parts)


def _per_seed(statistic, mats: list[np.ndarray], S: int) -> np.ndarray:
    """statistic on each seed alone: batches (b, rows, n) → (b, S) (1-row matrices repeated for every seed)."""
    b = mats[0].shape[0]
    flat = [x.reshape(b * S, 1, x.shape[-1]) if x.shape[1] == S else np.repeat(x, S, axis=0) for x in mats]
    return np.asarray(statistic(*flat), dtype=float).reshape(b, S)


@lru_cache(maxsize=64)
def _df_inflation(S: int) -> float:
    """(S − 1) / chi2_{S−1}(DF_QUANTILE): the seed variance's upper confidence bound over its estimate."""
    return float((S - 1) / stats.chi2.ppf(DF_QUANTILE, S - 1))


def _finish(value: float, seed_values: np.ndarray, v_ex: float, den_ex: float, v_res: float, den_res: float,
            n: int, confidence: float, null: float | None) -> Effect:
    """Combine the variance components into an Effect (see the module docstring).

    v_ex: MS_example / (S n); v_res: MS_residual / (S n); den_ex / den_res: Σ V_g² / df_g of those two components
    (for Satterthwaite's df). The seed component comes from the spread of `seed_values`.
    """
    S = len(seed_values)
    if S > 1:
        v_seeds = float(np.var(seed_values, ddof=1)) / S  # MS_seed / (S n): seeds and their own example noise
        v_items = max(v_ex - v_res, 0.0)  # the examples' share common to every seed
        var = v_seeds + v_items
        # Satterthwaite's df, with the seed term at its 70% upper confidence bound (see the module docstring)
        v_seeds_df = v_seeds * _df_inflation(S)
        den = v_seeds_df ** 2 / (S - 1) + (den_ex + den_res if v_items > 0 else 0.0)
        df = max((v_seeds_df + v_items) ** 2 / den, 1.0) if den > 0 else float("inf")
        share = min(max(v_seeds - v_res, 0.0) / var, 1.0) if var > 0 else 0.0
    else:
        var, share = v_ex, 0.0
        df = v_ex ** 2 / den_ex if den_ex > 0 else float("inf")
    se = float(np.sqrt(max(var, 0.0)))
    p = float("nan")
    if not np.isfinite(se) or not np.isfinite(value):
        lo = hi = float("nan")
    elif se == 0:
        lo = hi = value
        if null is not None:
            p = 1.0 if value == null else 0.0
    else:
        half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
        lo, hi = value - half, value + half
        if null is not None:
            p = float(min(1.0, 2 * stats.t.sf(abs(value - null) / se, df)))
    return Effect(float(value), float(lo), float(hi), p, se, S, int(n), tuple(float(v) for v in seed_values),
                  float(df), float(share))


def effect(statistic, groups, n_resamples: int = N_RESAMPLES, seed: int = 0, *, confidence: float = CONFIDENCE,
           null: float | None = 0.0) -> Effect:
    """An arbitrary statistic with an interval and p-value that include seed and example variance.

    statistic(*matrices) takes arrays of shape (B, rows, n_g) (the matrices of `groups` flattened) and returns (B,).
    value = statistic on the original data; seed_values = statistic on each seed's row alone (1-row matrices
    broadcast); the variance V_examples and the residual (per-seed example noise) come from an example-column
    bootstrap with seeds fixed (n_resamples draws, rng seed `seed`); see the module docstring. null=None: no p-value.
    """
    groups, S = _prepare(groups)
    flat = [m for g in groups for m in g]
    value = float(np.asarray(statistic(*[m[None] for m in flat]), dtype=float).reshape(-1)[0])
    seed_values = _per_seed(statistic, [m[None] for m in flat], S)[0]
    pooled, per = [], []
    for chunk in _draws(groups, S, n_resamples, seed, resample_seeds=False, resample_examples=True):
        pooled.append(np.asarray(statistic(*chunk), dtype=float).reshape(-1))
        if S > 1:
            per.append(_per_seed(statistic, chunk, S))
    ns = [g[0].shape[1] for g in groups]
    k = min(ns) / (min(ns) - 1) if min(ns) > 1 else 1.0  # bootstrap variance (ddof 0 over examples) → unbiased
    v_ex = k * float(np.nanvar(np.concatenate(pooled), ddof=1))
    den_ex = v_ex ** 2 / max(min(ns) - 1, 1)
    v_res = den_res = 0.0
    if S > 1:
        per = np.concatenate(per)
        dev = per - np.nanmean(per, axis=1, keepdims=True)
        v_res = k * float(np.nansum(np.nanvar(dev, axis=0, ddof=1))) / (S * (S - 1))
        den_res = v_res ** 2 / ((S - 1) * max(min(ns) - 1, 1))
    return _finish(value, seed_values, v_ex, den_ex, v_res, den_res, sum(ns), confidence, null)


def _linear(terms, confidence: float, null: float | None) -> Effect:
    """Closed form for a statistic Σ_k w_k · mean(M_k): terms is a list of groups, each a list of (matrix, weight)."""
    groups, S = _prepare([[m for m, _ in g] for g in terms])
    if any(np.isnan(m).any() for g in groups for m in g):
        raise ValueError("outcome matrices must be complete (no NaN); drop or impute missing outcomes first")
    value, seed_values = 0.0, np.zeros(S)
    v_ex = den_ex = v_res = den_res = 0.0
    for g, t in zip(groups, terms):
        n = g[0].shape[1]
        u = sum(w * np.broadcast_to(m, (S, n)) for m, (_, w) in zip(g, t))  # (S, n) weighted outcomes
        value += float(u.mean())
        rows = u.mean(axis=1)
        seed_values = seed_values + rows
        cols = u.mean(axis=0)
        if n > 1:
            vg = float(np.var(cols, ddof=1)) / n  # MS_example / (S n)
            v_ex += vg
            den_ex += vg ** 2 / (n - 1)
        if S > 1 and n > 1:
            resid = u - rows[:, None] - cols[None, :] + u.mean()
            vr = float((resid ** 2).sum()) / ((S - 1) * (n - 1)) / (S * n)  # MS_residual / (S n)
            v_res += vr
            den_res += vr ** 2 / ((S - 1) * (n - 1))
    return _finish(value, seed_values, v_ex, den_ex, v_res, den_res, sum(g[0].shape[1] for g in groups),
                   confidence, null)


def _mean(*ms):
    return ms[0].mean(axis=(-2, -1))


def mean_effect(m, *, confidence: float = CONFIDENCE, exact: bool = True, n_resamples: int = N_RESAMPLES,
                seed: int = 0) -> Effect:
    """Mean of a (S × n) matrix (or an (n,) vector: one seed); p is nan. exact=False: the generic bootstrap path."""
    if exact:
        return _linear([[(m, 1.0)]], confidence, None)
    return effect(_mean, [[m]], n_resamples, seed, confidence=confidence, null=None)


def _diff(a, b):
    return a.mean(axis=(-2, -1)) - b.mean(axis=(-2, -1))


def difference(a, b, paired_examples: bool = True, *, confidence: float = CONFIDENCE, exact: bool = True,
               n_resamples: int = N_RESAMPLES, seed: int = 0) -> Effect:
    """mean(a) − mean(b), seeds paired by row index (a 1-row matrix is broadcast over seeds).

    paired_examples: column j of a and b is the same example (resampled together); else they hold different examples.
    """
    groups = [[a, b]] if paired_examples else [[a], [b]]
    if exact:
        weights = [[1.0, -1.0]] if paired_examples else [[1.0], [-1.0]]
        return _linear([list(zip(g, w)) for g, w in zip(groups, weights)], confidence, 0.0)
    return effect(_diff, groups, n_resamples, seed, confidence=confidence)


def _did(mh, mb, bh, bb):
    return _diff(mh, mb) - _diff(bh, bb)


def did_effect(model_hold, model_break, base_hold, base_break, paired_examples: bool = True, *,
               confidence: float = CONFIDENCE, exact: bool = True, n_resamples: int = N_RESAMPLES,
               seed: int = 0) -> Effect:
    """Difference-in-differences (mean(model_hold) − mean(model_break)) − (mean(base_hold) − mean(base_break)).

    paired_examples=True: hold/break are counterfactual twins (column j of every matrix is the same item) → one group;
    False: hold items and break items are different → two groups (hold: model_hold & base_hold; break: model_break &
    base_break). The base is typically a 1-row matrix (deterministic), the model S rows (one per training seed).
    """
    if paired_examples:
        terms = [[(model_hold, 1.0), (model_break, -1.0), (base_hold, -1.0), (base_break, 1.0)]]
    else:
        terms = [[(model_hold, 1.0), (base_hold, -1.0)], [(model_break, -1.0), (base_break, 1.0)]]
    if exact:
        return _linear(terms, confidence, 0.0)
    if paired_examples:
        return effect(_did, [[model_hold, model_break, base_hold, base_break]], n_resamples, seed,
                      confidence=confidence)
    return effect(lambda mh, bh, mb, bb: _did(mh, mb, bh, bb), [[model_hold, base_hold], [model_break, base_break]],
                  n_resamples, seed, confidence=confidence)
