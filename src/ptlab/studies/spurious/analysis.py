"""From a study's stored outcomes to the accuracy tables a report shows (pure functions over DataFrames).

`cells`: one row per cell (cell_id, task, artifact, feature, rate, algorithm, seed).
`examples`: per-example outcomes (cell_id, split, example_id, correct, shortcut_agrees).
A *condition* is (task, artifact, rate, algorithm); its outcomes on a split form a
(seeds × items) matrix (`reliance.item_matrix`). Intervals and tests include
training-seed and item variance (`ptlab.evaluate.hierarchical`); each table's
tests form one declared family, Holm-corrected (`reliance.FAMILIES`).
"""

from __future__ import annotations

import pandas as pd

from ptlab.evaluate.hierarchical import difference, mean_effect
from ptlab.studies.spurious.config import BASE
from ptlab.studies.spurious.reliance import _aligned, _mark, effect_columns, item_matrix, with_holm

SPLITS = {"eval_id": "holds", "eval_break": "breaks", "eval_neutral": "no cue"}
FAMILIES = {
    "rate change": "shortcut-breaking accuracy, high vs low rate (task × artifact × algorithm)",
    "gains": "post-trained − base accuracy where the shortcut holds (task × artifact × rate × algorithm)",
    "winners": "the best arm vs each other arm where the shortcut breaks (task × artifact × rate × other arm)",
}


def condition_table(cells: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """One row per condition and split: accuracy with a 95% interval over seeds and items, the seed sd."""
    rows = []
    keys = ["task", "artifact", "feature", "rate", "algorithm"]
    for key, group in cells.groupby(keys, sort=True):
        cond = dict(zip(keys, key))
        for split in [*SPLITS, "pairs_rank", "pairs_reward"]:
            m = item_matrix(group, examples, split)
            if m.empty:
                continue
            e = mean_effect(m.to_numpy(float))
            per_seed = pd.Series(e.seed_values)
            rows.append({**cond, "split": split, "accuracy": e.value, "lo": e.lo, "hi": e.hi,
                         "seed_sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan"),
                         "seeds": e.seeds, "n": m.shape[1]})
    return pd.DataFrame(rows)


def _test(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """a − b on their common items and seeds (paired on both)."""
    e = difference(*_aligned(a, b))
    cols = effect_columns(e)
    cols["diff"] = cols.pop("value")
    return cols


def _family(rows: list[dict], family: str) -> pd.DataFrame:
    df = with_holm(pd.DataFrame(rows), family)
    if not df.empty:
        df["mark"] = df["p_adj"].map(_mark)
    return df


def rate_change(cells: pd.DataFrame, examples: pd.DataFrame, split: str = "eval_break") -> pd.DataFrame:
    """Accuracy at the highest rate minus at the lowest, per (task, artifact, algorithm): the items are the same at
    every rate and seed i the same plans, so the test is paired on both."""
    rows = []
    for (task, artifact, alg), group in cells.groupby(["task", "artifact", "algorithm"], sort=True):
        rates = sorted(group["rate"].unique())
        if len(rates) < 2:
            continue
        hi = item_matrix(group, examples, split, rate=rates[-1])
        lo = item_matrix(group, examples, split, rate=rates[0])
        if hi.empty or lo.empty:
            continue
        rows.append({"task": task, "artifact": artifact, "algorithm": alg, "split": split, "from_rate": rates[0],
                     "to_rate": rates[-1], **_test(hi, lo)})
    return _family(rows, "rate change")


def gain_over_base(cells: pd.DataFrame, examples: pd.DataFrame, split: str = "eval_id") -> pd.DataFrame:
    """Each post-trained condition's accuracy minus the untrained base's on the same items (empty without base cells)."""
    rows = []
    for (task, artifact, rate), group in cells.groupby(["task", "artifact", "rate"], sort=True):
        base = item_matrix(group, examples, split, algorithm=BASE)
        if base.empty:
            continue
        for alg in sorted(set(group["algorithm"]) - {BASE}):
            trained = item_matrix(group, examples, split, algorithm=alg)
            if trained.empty:
                continue
            rows.append({"task": task, "artifact": artifact, "rate": rate, "algorithm": alg, "split": split,
                         "base": float(base.to_numpy().mean()), "trained": float(trained.to_numpy().mean()),
                         **_test(trained, base)})
    return _family(rows, "gains")


def winners(cells: pd.DataFrame, examples: pd.DataFrame, split: str = "eval_break") -> pd.DataFrame:
    """Per (task, artifact, rate): the best arm on `split` and whether it beats every other one (Holm over the whole
    table's comparisons)."""
    tests, best_rows = [], []
    for (task, artifact, rate), group in cells.groupby(["task", "artifact", "rate"], sort=True):
        mats = {a: item_matrix(group, examples, split, algorithm=a) for a in sorted(group["algorithm"].unique())}
        mats = {a: m for a, m in mats.items() if not m.empty}
        if not mats:
            continue
        means = {a: float(m.to_numpy().mean()) for a, m in mats.items()}
        best = max(means, key=means.get)
        others = [a for a in mats if a != best]
        key = {"task": task, "artifact": artifact, "rate": rate}
        best_rows.append({**key, "split": split, "best": best, "accuracy": means[best],
                          "runner_up": max(others, key=means.get) if others else None,
                          "margin": means[best] - max((means[a] for a in others), default=means[best])})
        tests += [{**key, "other": a, **_test(mats[best], mats[a])} for a in others]
    if not best_rows:
        return pd.DataFrame()
    t = _family(tests, "winners")
    out = []
    for r in best_rows:
        mine = t[(t["task"] == r["task"]) & (t["artifact"] == r["artifact"]) & (t["rate"] == r["rate"])] \
            if not t.empty else t
        worst = float(mine["p_adj"].max()) if not mine.empty else 1.0
        out.append({**r, "p_vs_all": worst, "beats_all": not mine.empty and worst < 0.05,
                    "mark": _mark(worst) if not mine.empty else ""})
    return pd.DataFrame(out)
