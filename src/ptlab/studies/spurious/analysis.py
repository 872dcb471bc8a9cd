"""From a study's stored outcomes to the numbers a report shows (pure functions over DataFrames).

`cells`: one row per cell (cell_id, task, artifact, feature, rate, algorithm, seed).
`examples`: per-example outcomes (cell_id, split, example_id, correct, shortcut_agrees).
A *condition* is (task, artifact, rate, algorithm); its outcomes on a split form a
(seeds × examples) matrix, aggregated with `ptlab.evaluate.stats`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ptlab.evaluate.stats import compare, mean_ci, significance_mark

SPLITS = {"eval_id": "holds", "eval_break": "breaks", "eval_neutral": "no cue"}


def outcomes(cells: pd.DataFrame, examples: pd.DataFrame, split: str, **where) -> tuple[np.ndarray, np.ndarray]:
    """(correct, shortcut_agrees) matrices (seeds × examples) of the cells matching `where` on `split`."""
    sel = cells
    for k, v in where.items():
        sel = sel[sel[k] == v]
    ex = examples[(examples["split"] == split) & examples["cell_id"].isin(sel["cell_id"])]
    if ex.empty:
        return np.zeros((0, 0)), np.zeros((0, 0), bool)
    ex = ex.merge(sel[["cell_id", "seed"]], on="cell_id")
    correct = ex.pivot_table(index="seed", columns="example_id", values="correct", aggfunc="mean").dropna(axis=1)
    agrees = ex.groupby("example_id")["shortcut_agrees"].first().reindex(correct.columns)
    return correct.to_numpy(float), np.broadcast_to(agrees.to_numpy(bool), correct.shape)


def condition_table(cells: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """One row per condition and split: accuracy (95% CI over examples, seeds pooled), seed sd (reliance, a
    difference-in-differences against the base, is `reliance.reliance_table`'s)."""
    rows = []
    keys = ["task", "artifact", "feature", "rate", "algorithm"]
    for key, group in cells.groupby(keys, sort=True):
        cond = dict(zip(keys, key))
        for split in SPLITS:
            c, a = outcomes(group, examples, split)
            if c.size == 0:
                continue
            est = mean_ci(c)
            rows.append({**cond, "split": split, "accuracy": est.value, "lo": est.lo, "hi": est.hi,
                         "seed_sd": est.seed_sd, "seeds": est.seeds, "n": est.n})
        for split in ("pairs_rank", "pairs_reward"):
            c, _ = outcomes(group, examples, split)
            if c.size:
                est = mean_ci(c)
                rows.append({**cond, "split": split, "accuracy": est.value, "lo": est.lo, "hi": est.hi,
                             "seed_sd": est.seed_sd, "seeds": est.seeds, "n": est.n})
    return pd.DataFrame(rows)


def rate_change(cells: pd.DataFrame, examples: pd.DataFrame, split: str = "eval_break") -> pd.DataFrame:
    """Accuracy at the highest rate minus at the lowest, per (task, artifact, algorithm), with a test.

    On the shortcut-breaking split the examples do not depend on the rate, so the
    comparison is paired (sign-flip permutation test); otherwise it is unpaired.
    """
    rows = []
    for (task, artifact, alg), group in cells.groupby(["task", "artifact", "algorithm"], sort=True):
        rates = sorted(group["rate"].unique())
        if len(rates) < 2:
            continue
        lo_c, _ = outcomes(group, examples, split, rate=rates[0])
        hi_c, _ = outcomes(group[group["rate"] == rates[-1]], examples, split)
        if lo_c.size == 0 or hi_c.size == 0:
            continue
        lo_ids = _ids(group[group["rate"] == rates[0]], examples, split)
        hi_ids = _ids(group[group["rate"] == rates[-1]], examples, split)
        paired = lo_ids == hi_ids
        cmp = compare(hi_c, lo_c, paired=paired)
        rows.append({"task": task, "artifact": artifact, "algorithm": alg, "split": split, "from_rate": rates[0],
                     "to_rate": rates[-1], **cmp.as_dict(), "mark": significance_mark(cmp.p)})
    return pd.DataFrame(rows)


def gain_over_base(cells: pd.DataFrame, examples: pd.DataFrame, split: str = "eval_id") -> pd.DataFrame:
    """Each post-trained condition's accuracy minus the untrained base's on the same examples (paired test).

    Needs `base` cells (the study's `base` algorithm); empty without them.
    """
    from ptlab.studies.spurious.config import BASE

    rows = []
    for (task, artifact, rate), group in cells.groupby(["task", "artifact", "rate"], sort=True):
        base, _ = outcomes(group, examples, split, algorithm=BASE)
        if base.size == 0:
            continue
        base_ids = _ids(group[group["algorithm"] == BASE], examples, split)
        for alg in sorted(set(group["algorithm"]) - {BASE}):
            trained, _ = outcomes(group, examples, split, algorithm=alg)
            if trained.size == 0:
                continue
            cmp = compare(trained, base, paired=_ids(group[group["algorithm"] == alg], examples, split) == base_ids)
            rows.append({"task": task, "artifact": artifact, "rate": rate, "algorithm": alg, "split": split,
                         "base": float(base.mean()), "trained": float(trained.mean()), **cmp.as_dict(),
                         "mark": significance_mark(cmp.p)})
    return pd.DataFrame(rows)


def _ids(cells: pd.DataFrame, examples: pd.DataFrame, split: str) -> list[str]:
    ex = examples[(examples["split"] == split) & examples["cell_id"].isin(cells["cell_id"])]
    return sorted(ex["example_id"].unique())


def winners(cells: pd.DataFrame, examples: pd.DataFrame, split: str = "eval_break") -> pd.DataFrame:
    """Per (task, artifact, rate): the best algorithm on `split` and whether it beats each other one (paired test)."""
    rows = []
    for (task, artifact, rate), group in cells.groupby(["task", "artifact", "rate"], sort=True):
        algs = sorted(group["algorithm"].unique())
        mats = {a: outcomes(group, examples, split, algorithm=a)[0] for a in algs}
        mats = {a: m for a, m in mats.items() if m.size}
        if not mats:
            continue
        means = {a: float(m.mean()) for a, m in mats.items()}
        best = max(means, key=means.get)
        others = [a for a in mats if a != best]
        tests = {a: compare(mats[best], mats[a], paired=mats[best].shape[1] == mats[a].shape[1]) for a in others}
        worst_p = max((t.p for t in tests.values()), default=1.0)
        rows.append({"task": task, "artifact": artifact, "rate": rate, "split": split, "best": best,
                     "accuracy": means[best], "runner_up": max(others, key=means.get) if others else None,
                     "margin": means[best] - max((means[a] for a in others), default=means[best]),
                     "p_vs_all": worst_p, "beats_all": bool(others) and worst_p < 0.05,
                     "mark": significance_mark(worst_p) if others else ""})
    return pd.DataFrame(rows)
