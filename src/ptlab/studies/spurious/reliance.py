"""Shortcut reliance as a difference-in-differences on twins, the controls' verdict, and the paper's claims.

Reliance of a condition = (accuracy where the shortcut holds − where it breaks) of
its model − the same gap of the untrained base on the same items. Feature
Ambiguity's holds/breaks items are counterfactual twins (one plan, the cue
agreeing or conflicting), so the per-item difference is paired; Distributional
Narrowness compares items inside and outside the slice, so its two groups are
resampled separately. Subtracting the base removes whatever gap the items have
before post-training (a slice that is simply easier, a cue the base reacts to).
Pure functions over the report's DataFrames (see `analysis.outcomes`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ptlab.evaluate.stats import N_RESAMPLES, Comparison, compare, significance_mark
from ptlab.studies.spurious.config import BASE
from ptlab.tasks.spurious import FEATURE_AMBIGUITY

ALPHA = 0.05
SHORT = {"feature_ambiguity": "FA", "distributional_narrowness": "DN"}


def _item_means(cells: pd.DataFrame, examples: pd.DataFrame, split: str, **where) -> pd.Series:
    """Seed-averaged outcome per evaluation item, indexed by the item's number (twins share it across splits)."""
    sel = cells
    for k, v in where.items():
        sel = sel[sel[k] == v]
    ex = examples[(examples["split"] == split) & examples["cell_id"].isin(sel["cell_id"])]
    if ex.empty:
        return pd.Series(dtype=float)
    per = ex.groupby("example_id")["correct"].mean()
    per.index = per.index.map(lambda i: i.rsplit("-", 1)[-1])
    return per


def did(model_hold: pd.Series, model_break: pd.Series, base_hold: pd.Series, base_break: pd.Series,
        paired: bool, seed: int = 0) -> dict:
    """Difference-in-differences with a 95% bootstrap interval over items (twins resampled together when paired)."""
    dh = (model_hold - base_hold).dropna()
    db = (model_break - base_break).dropna()
    rng = np.random.default_rng(seed)
    if paired:
        items = dh.index.intersection(db.index)
        d = (dh[items] - db[items]).to_numpy(float)
        if d.size == 0:
            return {}
        boots = d[rng.integers(0, d.size, (N_RESAMPLES, d.size))].mean(axis=1)
        value, n = float(d.mean()), d.size
    else:
        a, b = dh.to_numpy(float), db.to_numpy(float)
        if not a.size or not b.size:
            return {}
        boots = a[rng.integers(0, a.size, (N_RESAMPLES, a.size))].mean(1) - b[rng.integers(0, b.size, (N_RESAMPLES, b.size))].mean(1)
        value, n = float(a.mean() - b.mean()), min(a.size, b.size)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    p = float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))
    return {"reliance": value, "lo": float(lo), "hi": float(hi), "p": p, "n": n, "mark": significance_mark(p)}


def reliance_table(cells: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, artifact, feature, rate, algorithm): the gap and its difference-in-differences vs the base."""
    rows = []
    for (task, artifact, feature), group in cells.groupby(["task", "artifact", "feature"], sort=True):
        base_hold = _item_means(group, examples, "eval_id", algorithm=BASE)
        base_break = _item_means(group, examples, "eval_break", algorithm=BASE)
        for (rate, alg), cond in group.groupby(["rate", "algorithm"], sort=True):
            hold, brk = _item_means(cond, examples, "eval_id"), _item_means(cond, examples, "eval_break")
            neutral = _item_means(cond, examples, "eval_neutral")
            if hold.empty or brk.empty:
                continue
            row = {"task": task, "artifact": artifact, "feature": feature, "rate": rate, "algorithm": alg,
                   "holds": float(hold.mean()), "breaks": float(brk.mean()),
                   "neutral": float(neutral.mean()) if not neutral.empty else float("nan"),
                   "gap": float(hold.mean() - brk.mean()), "n": len(hold)}
            if alg != BASE and not base_hold.empty:
                row.update(did(hold, brk, base_hold, base_break, paired=artifact == FEATURE_AMBIGUITY))
            rows.append(row)
    return pd.DataFrame(rows)


def controls_verdict(rel: pd.DataFrame) -> pd.DataFrame:
    """Per task and algorithm with controls: the negative control (rate 0) must be null, the positive (rate 1)
    clearly positive; `detects` says whether this design can see reliance at all."""
    fa = rel[(rel["artifact"] == FEATURE_AMBIGUITY) & (rel["algorithm"] != BASE)]
    rows = []
    for (task, alg), g in fa.groupby(["task", "algorithm"], sort=True):
        neg, pos = g[g["rate"] == 0.0], g[g["rate"] == 1.0]
        if neg.empty or pos.empty or "reliance" not in g or neg["reliance"].isna().all() or pos["reliance"].isna().all():
            continue
        n, p = neg.iloc[0], pos.iloc[0]
        rows.append({"task": task, "algorithm": alg, "negative": n["reliance"], "negative_lo": n["lo"],
                     "negative_hi": n["hi"], "negative_null": bool(n["lo"] <= 0 <= n["hi"]),
                     "positive": p["reliance"], "positive_lo": p["lo"], "positive_hi": p["hi"],
                     "detects": bool(p["lo"] > 0)})
    return pd.DataFrame(rows)


def _change(cells, examples, split, alg, task, artifact, lo, hi) -> np.ndarray:
    """Per-item change of a condition's outcome from rate `lo` to rate `hi` (the items are the same at every rate)."""
    sel = cells[(cells["task"] == task) & (cells["artifact"] == artifact) & (cells["algorithm"] == alg)]
    a, b = _item_means(sel[sel["rate"] == hi], examples, split), _item_means(sel[sel["rate"] == lo], examples, split)
    items = a.index.intersection(b.index)
    return (a[items] - b[items]).to_numpy(float)


def claims(cells: pd.DataFrame, examples: pd.DataFrame, low: float, high: float) -> list[dict]:
    """The paper's three claims, each with this study's verdict and the numbers behind it.

    1. Models often, but not always, degrade at the high rate: shortcut-breaking accuracy at `high` vs `low`, per
       (task, artifact, algorithm); supported when some but not all conditions drop significantly.
    2. DPO/KTO are relatively robust on math: their drop is smaller than SFT's (paired on the same items).
    3. SFT is stronger on context-heavy doc QA: SFT's docqa accuracy beats DPO's and KTO's (paired, both splits).
    Tests are uncorrected at 0.05; "not tested" when the grid lacks what a claim needs.
    """
    trained = cells[cells["algorithm"] != BASE]
    out = []
    drops = []
    for (task, artifact, alg), g in trained.groupby(["task", "artifact", "algorithm"], sort=True):
        if not {low, high} <= set(g["rate"]):
            continue
        d = _change(cells, examples, "eval_break", alg, task, artifact, low, high)
        if d.size:
            cmp = compare(d, np.zeros_like(d))
            drops.append((task, artifact, alg, cmp))
    if drops:
        sig = [x for x in drops if x[3].diff < 0 and x[3].p < ALPHA]
        verdict = "supported" if 0 < len(sig) < len(drops) else "not supported"
        detail = (f"{len(sig)} of {len(drops)} conditions lose shortcut-breaking accuracy significantly from "
                  f"{low:g} to {high:g}" + (": " + "; ".join(f"{t}/{SHORT[a]}/{g} {c.diff * 100:+.1f} pts "
                                                          f"(p={c.p:.2g})" for t, a, g, c in sig) if sig else ""))
        if not sig:
            verdict = "not supported (no condition degrades)"
        elif len(sig) == len(drops):
            verdict = "partly supported (every condition degrades: 'not always' is not seen)"
        out.append({"claim": "Models often, but not always, degrade at the high spurious rate", "verdict": verdict,
                    "evidence": detail})
    else:
        out.append({"claim": "Models often, but not always, degrade at the high spurious rate",
                    "verdict": "not tested", "evidence": f"needs rates {low:g} and {high:g}"})
    out.append(_robust_on_math(cells, examples, low, high))
    out.append(_sft_on_docqa(cells, examples))
    return out


def _robust_on_math(cells, examples, low, high) -> dict:
    claim = "DPO and KTO are relatively robust on math (they degrade less than SFT)"
    lines, better = [], []
    for artifact in sorted(cells["artifact"].unique()):
        sft = _change(cells, examples, "eval_break", "sft", "math", artifact, low, high)
        for alg in ("dpo", "kto"):
            other = _change(cells, examples, "eval_break", alg, "math", artifact, low, high)
            if not sft.size or other.size != sft.size:
                continue
            cmp = compare(other, sft)  # change of the preference algorithm − SFT's change, paired on items
            better.append(cmp.diff > 0 and cmp.p < ALPHA)
            lines.append(f"{SHORT[artifact]}: {alg} {other.mean() * 100:+.1f} vs sft {sft.mean() * 100:+.1f} pts "
                         f"(difference {cmp.diff * 100:+.1f}, p={cmp.p:.2g})")
    if not lines:
        return {"claim": claim, "verdict": "not tested", "evidence": "needs math with sft, dpo, kto at two rates"}
    verdict = "supported" if all(better) else "partly supported" if any(better) else "not supported"
    return {"claim": claim, "verdict": verdict, "evidence": "; ".join(lines)}


def _sft_on_docqa(cells, examples) -> dict:
    claim = "SFT is stronger than DPO and KTO on context-heavy document QA"
    doc = cells[cells["task"] == "docqa"]
    if doc.empty:
        return {"claim": claim, "verdict": "not tested", "evidence": "needs docqa with sft, dpo and kto"}
    results: list[tuple[str, Comparison]] = []
    conditions = doc[["artifact", "rate"]].drop_duplicates().itertuples(index=False)
    keys = [(a, r, s) for a, r in conditions for s in ("eval_id", "eval_break")]

    def outcomes_of(alg):  # every condition's items, keyed apart (item numbers repeat across conditions)
        sel = doc[doc["algorithm"] == alg]
        return pd.concat([_item_means(sel[(sel["artifact"] == a) & (sel["rate"] == r)], examples, s)
                          .add_prefix(f"{a}/{r}/{s}/") for a, r, s in keys])

    for alg in ("dpo", "kto"):
        a, b = outcomes_of("sft"), outcomes_of(alg)
        items = a.index.intersection(b.index)
        if len(items):
            results.append((alg, compare(a[items].to_numpy(float), b[items].to_numpy(float))))
    if len(results) < 2:
        return {"claim": claim, "verdict": "not tested", "evidence": "needs docqa with sft, dpo and kto"}
    wins = [c.diff > 0 and c.p < ALPHA for _, c in results]
    verdict = "supported" if all(wins) else "partly supported" if any(wins) else "not supported"
    return {"claim": claim, "verdict": verdict,
            "evidence": "; ".join(f"sft − {alg}: {c.diff * 100:+.1f} pts [{c.lo * 100:+.1f}, {c.hi * 100:+.1f}] "
                                  f"(p={c.p:.2g})" for alg, c in results) + " (fact selection, all rates and splits)"}
