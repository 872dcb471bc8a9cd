"""Shortcut reliance as a difference-in-differences on twins, the controls' verdict, and the paper's claims.

Reliance of a condition = (accuracy where the shortcut holds − where it breaks) of
its model − the same gap of the untrained base on the same items. Feature
Ambiguity's holds/breaks items are counterfactual twins (one plan, the cue
agreeing or conflicting), so the per-item difference is paired; Distributional
Narrowness compares items inside and outside the slice, so its two groups are
different items. Subtracting the base removes whatever gap the items have before
post-training (a slice that is simply easier, a cue the base reacts to).

Every interval and p-value includes training-seed variance as well as the
examples' (`ptlab.evaluate.hierarchical`: seeds × items, crossed), and every
test belongs to a declared family within which Holm's correction is applied
(`FAMILIES`); claims get a verdict that says "underpowered" when the minimum
detectable effect exceeds the smallest effect of interest, never "no difference".
Pure functions over the report's DataFrames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ptlab.evaluate.hierarchical import Effect, did_effect, difference
from ptlab.evaluate.multiple import holm
from ptlab.evaluate.power import mde, verdict
from ptlab.report.verdicts import Effect as Measured
from ptlab.studies.spurious.config import BASE
from ptlab.tasks.spurious import FEATURE_AMBIGUITY

ALPHA = 0.05
SHORT = {"feature_ambiguity": "FA", "distributional_narrowness": "DN"}
# The smallest effect of interest (accuracy points, as a fraction): the paper (Shuieh et al., 2025) reports its
# degradations in figures, without a number our references quote, so a claim is judged against a declared 10-point
# effect; a comparison whose minimum detectable effect at 80% power exceeds it is "inconclusive (underpowered)".
EXPECTED = 0.10
FAMILIES = {  # each report table's tests, and the family Holm's correction runs within
    "reliance": "every post-trained condition's reliance (task × artifact × rate × algorithm), controls apart",
    "controls": "the controls' reliance (task × rate 0 / 1 × algorithm)",
    "claim 1": "shortcut-breaking accuracy, high vs low rate (task × artifact × algorithm)",
    "claim 2": "math: a preference arm's change − SFT's (artifact × algorithm)",
    "claim 3": "docqa: SFT − a preference arm (algorithm)",
}


def item_matrix(cells: pd.DataFrame, examples: pd.DataFrame, split: str, **where) -> pd.DataFrame:
    """Outcomes of the matching cells on `split`: a row per seed, a column per item (twins share the item's number
    across splits). An untrained base decoded greedily is one row: its seeds are the same model."""
    sel = cells
    for k, v in where.items():
        sel = sel[sel[k] == v]
    ex = examples[(examples["split"] == split) & examples["cell_id"].isin(sel["cell_id"])]
    if ex.empty:
        return pd.DataFrame()
    ex = ex.merge(sel[["cell_id", "seed"]], on="cell_id")
    ex = ex.assign(item=ex["example_id"].map(lambda i: i.rsplit("-", 1)[-1]))
    m = ex.pivot_table(index="seed", columns="item", values="correct", aggfunc="mean").dropna(axis=1)
    if len(m) > 1 and (m.nunique(axis=0) <= 1).all():
        m = m.iloc[:1]
    return m


def _aligned(*mats: pd.DataFrame) -> list[np.ndarray]:
    """The matrices on their common items (and common seeds, for the ones with several)."""
    items = mats[0].columns
    for m in mats[1:]:
        items = items.intersection(m.columns)
    multi = [m for m in mats if len(m) > 1]
    seeds = multi[0].index if multi else None
    for m in multi[1:]:
        seeds = seeds.intersection(m.index)
    return [(m.loc[seeds] if len(m) > 1 else m)[items].to_numpy(float) for m in mats]


def did(model_hold, model_break, base_hold, base_break, paired: bool) -> Effect | None:
    """Reliance of a model over the base: seeds and items both in its interval."""
    if paired:
        mats = _aligned(model_hold, model_break, base_hold, base_break)
        return did_effect(*mats, paired_examples=True) if mats[0].size else None
    mh, bh = _aligned(model_hold, base_hold)
    mb, bb = _aligned(model_break, base_break)
    if not mh.size or not mb.size:
        return None
    return did_effect(mh, mb, bh, bb, paired_examples=False)


def effect_columns(e: Effect, prefix: str = "") -> dict:
    """An effect as report columns: value, interval, p, se, MDE at 80% power, seeds, and the per-seed values."""
    return {f"{prefix}value": e.value, f"{prefix}lo": e.lo, f"{prefix}hi": e.hi, f"{prefix}p": e.p,
            f"{prefix}se": e.se, f"{prefix}mde": mde(e.se, df=e.df), f"{prefix}seeds": e.seeds,
            f"{prefix}per_seed": ", ".join(f"{v * 100:+.0f}" for v in e.seed_values) if e.seeds > 1 else ""}


def with_holm(df: pd.DataFrame, family: str, p_col: str = "p") -> pd.DataFrame:
    """Holm-adjusted p-values (`p_adj`) over the rows of one declared family, and the family's name."""
    if df.empty or p_col not in df:
        return df
    out = df.copy()
    out["p_adj"] = holm(out[p_col].to_numpy(float))
    out["family"] = family
    return out


def _mark(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def is_control(artifact: str, rate: float) -> bool:
    return artifact == FEATURE_AMBIGUITY and rate in (0.0, 1.0)


def reliance_table(cells: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, artifact, feature, rate, algorithm): the gap, and its difference-in-differences vs the base
    with seeds and items in the interval; Holm within the reliance family and, apart, the controls'."""
    rows = []
    for (task, artifact, feature), group in cells.groupby(["task", "artifact", "feature"], sort=True):
        base_hold = item_matrix(group, examples, "eval_id", algorithm=BASE)
        base_break = item_matrix(group, examples, "eval_break", algorithm=BASE)
        for (rate, alg), cond in group.groupby(["rate", "algorithm"], sort=True):
            hold, brk = item_matrix(cond, examples, "eval_id"), item_matrix(cond, examples, "eval_break")
            neutral = item_matrix(cond, examples, "eval_neutral")
            if hold.empty or brk.empty:
                continue
            row = {"task": task, "artifact": artifact, "feature": feature, "rate": rate, "algorithm": alg,
                   "holds": float(hold.to_numpy().mean()), "breaks": float(brk.to_numpy().mean()),
                   "neutral": float(neutral.to_numpy().mean()) if not neutral.empty else float("nan"),
                   "gap": float(hold.to_numpy().mean() - brk.to_numpy().mean()), "n": hold.shape[1]}
            e = did(hold, brk, base_hold, base_break, paired=artifact == FEATURE_AMBIGUITY) \
                if alg != BASE and not base_hold.empty else None
            if e is not None:
                cols = effect_columns(e)
                cols["reliance"] = cols.pop("value")
                row.update(cols)
            rows.append(row)
    rel = pd.DataFrame(rows)
    if rel.empty or "reliance" not in rel:
        return rel
    tested = rel["reliance"].notna()
    control = rel.apply(lambda r: is_control(r["artifact"], r["rate"]), axis=1)
    parts = [rel[~tested], with_holm(rel[tested & ~control], "reliance"), with_holm(rel[tested & control], "controls")]
    rel = pd.concat([p for p in parts if not p.empty]).sort_index()
    rel["mark"] = rel["p_adj"].map(lambda p: _mark(p) if pd.notna(p) else "")
    return rel


def controls_verdict(rel: pd.DataFrame) -> pd.DataFrame:
    """Per task and algorithm with controls: the negative control (rate 0) must be null, the positive (rate 1)
    clearly positive; `detects` says whether this design can see reliance at all."""
    if rel.empty or "reliance" not in rel:
        return pd.DataFrame()
    fa = rel[(rel["artifact"] == FEATURE_AMBIGUITY) & (rel["algorithm"] != BASE)]
    rows = []
    for (task, alg), g in fa.groupby(["task", "algorithm"], sort=True):
        neg, pos = g[g["rate"] == 0.0], g[g["rate"] == 1.0]
        if neg.empty or pos.empty or neg["reliance"].isna().all() or pos["reliance"].isna().all():
            continue
        n, p = neg.iloc[0], pos.iloc[0]
        rows.append({"task": task, "algorithm": alg, "negative": n["reliance"], "negative_lo": n["lo"],
                     "negative_hi": n["hi"], "negative_null": bool(n["lo"] <= 0 <= n["hi"]),
                     "positive": p["reliance"], "positive_lo": p["lo"], "positive_hi": p["hi"],
                     "detects": bool(p["lo"] > 0), "seeds": int(p["seeds"])})
    return pd.DataFrame(rows)


def _break_change(cells, examples, task, artifact, alg, low, high) -> tuple[pd.DataFrame, pd.DataFrame]:
    sel = cells[(cells["task"] == task) & (cells["artifact"] == artifact) & (cells["algorithm"] == alg)]
    return (item_matrix(sel[sel["rate"] == high], examples, "eval_break"),
            item_matrix(sel[sel["rate"] == low], examples, "eval_break"))


def claims(cells: pd.DataFrame, examples: pd.DataFrame, low: float, high: float) -> tuple[list[dict], pd.DataFrame]:
    """The paper's three claims, each with a verdict, and the table of every test behind them (Holm per claim).

    1. Models often, but not always, degrade at the high rate: shortcut-breaking accuracy at `high` − at `low`,
       per (task, artifact, algorithm).
    2. DPO/KTO are relatively robust on math: a preference arm's change from `low` to `high` − SFT's (> 0: it
       degrades less).
    3. SFT is stronger on context-heavy doc QA: SFT's docqa accuracy − a preference arm's, over every condition
       and both splits.
    Claim 1's verdict: supported when some but not all conditions drop significantly (Holm), partly supported when
    all do; when none does, "no effect (adequately powered)" if at least half of them could have detected a drop of
    `EXPECTED` at 80% power, else "inconclusive (underpowered)". Claims 2 and 3: supported when every test is,
    partly when some are. A claim is "not tested" when the grid lacks what it needs.
    """
    trained = cells[~cells["algorithm"].isin([BASE])]
    tests = []
    for (task, artifact, alg), g in trained.groupby(["task", "artifact", "algorithm"], sort=True):
        if not {low, high} <= set(g["rate"]):
            continue
        hi_m, lo_m = _break_change(cells, examples, task, artifact, alg, low, high)
        if hi_m.empty or lo_m.empty:
            continue
        tests.append({"claim": "claim 1", "test": f"{task}/{SHORT[artifact]}/{alg}: breaks @{high:g} − @{low:g}",
                      **effect_columns(difference(*_aligned(hi_m, lo_m)))})
    for artifact in sorted(cells["artifact"].unique()):
        sft = _break_change(cells, examples, "math", artifact, "sft", low, high)
        for alg in ("dpo", "kto"):
            other = _break_change(cells, examples, "math", artifact, alg, low, high)
            if any(m.empty for m in (*sft, *other)):
                continue
            e = did_effect(*_aligned(*other, *sft), paired_examples=True)
            tests.append({"claim": "claim 2", "test": f"math/{SHORT[artifact]}: {alg} change − sft change",
                          **effect_columns(e)})
    doc = cells[cells["task"] == "docqa"]
    keys = [(a, r, s) for a, r in doc[["artifact", "rate"]].drop_duplicates().itertuples(index=False)
            for s in ("eval_id", "eval_break")]

    def pooled(alg):  # every docqa condition's items side by side (item numbers repeat across conditions)
        sel = doc[doc["algorithm"] == alg]
        mats = [item_matrix(sel[(sel["artifact"] == a) & (sel["rate"] == r)], examples, s).add_prefix(f"{a}/{r}/{s}/")
                for a, r, s in keys]
        mats = [m for m in mats if not m.empty]
        return pd.concat(mats, axis=1).dropna(axis=1) if mats else pd.DataFrame()

    sft_doc = pooled("sft")
    for alg in ("dpo", "kto"):
        other = pooled(alg)
        if sft_doc.empty or other.empty:
            continue
        tests.append({"claim": "claim 3", "test": f"docqa: sft − {alg} (fact selection, every rate and split)",
                      **effect_columns(difference(*_aligned(sft_doc, other)))})
    table = pd.DataFrame(tests)
    if not table.empty:
        table = pd.concat([with_holm(g, c) for c, g in table.groupby("claim", sort=True)])
        table["verdict"] = [verdict(Measured(r["value"], r["lo"], r["hi"], r["se"]), r["p_adj"], EXPECTED, direction=-1 if r["claim"] == "claim 1"
                                    else 1) for r in table.to_dict("records")]
    return [_claim_1(table, low, high), _claim_2(table), _claim_3(table)], table


def _pts(v: float) -> str:
    return f"{v * 100:+.1f}"


def _strongest(rows: pd.DataFrame) -> dict:
    """The claim's most significant test: its effect, interval and p-values (named first in the detail)."""
    r = rows.sort_values("p_adj").iloc[0]
    return {"effect": f"{_pts(r['value'])} pts", "interval": f"[{_pts(r['lo'])}, {_pts(r['hi'])}]",
            "p": f"{r['p']:.2g}", "p_adj": f"{r['p_adj']:.2g}", "test": r["test"]}


CLAIMS = {
    "claim 1": "Models often, but not always, degrade at the high spurious rate",
    "claim 2": "DPO and KTO are relatively robust on math (they degrade less than SFT)",
    "claim 3": "SFT is stronger than DPO and KTO on context-heavy document QA",
}
NEEDS = {"claim 1": "two rates", "claim 2": "math with sft, dpo, kto at two rates",
         "claim 3": "docqa with sft, dpo and kto"}


def _untested(claim: str) -> dict:
    return {"key": claim, "claim": CLAIMS[claim], "verdict": "not tested", "detail": f"needs {NEEDS[claim]}"}


def _claim_1(table: pd.DataFrame, low: float, high: float) -> dict:
    rows = table[table["claim"] == "claim 1"] if not table.empty else table
    if rows.empty:
        return _untested("claim 1")
    drops = rows[rows["verdict"] == "supported"]
    under = rows[rows["verdict"].str.startswith("inconclusive")]
    n = len(rows)
    if 0 < len(drops) < n:
        v = "supported"
    elif len(drops) == n:
        v = "partly supported"  # every condition degrades: "not always" is not seen (the detail says so)
    elif len(under) > n / 2:
        v = "inconclusive (underpowered)"  # most conditions could not have shown a drop of the size of interest
    else:
        v = "no effect (adequately powered)"  # no condition degrades, and most could have shown it
    top = _strongest(drops if len(drops) else rows)
    detail = (f"shown: {top.pop('test')}; {len(drops)} of {n} conditions lose shortcut-breaking accuracy from "
              f"{low:g} to {high:g} (Holm, α={ALPHA}); {len(under)} of {n} could not have detected a "
              f"{EXPECTED * 100:.0f}-point drop")
    return {"key": "claim 1", "claim": CLAIMS["claim 1"], "verdict": v, "detail": detail, **top}


def _aggregate(key: str, table: pd.DataFrame) -> dict:
    rows = table[table["claim"] == key] if not table.empty else table
    if rows.empty:
        return _untested(key)
    verdicts = list(rows["verdict"])
    if all(v == "supported" for v in verdicts):
        v = "supported"
    elif "supported" in verdicts:
        v = "partly supported"
    elif "contradicted" in verdicts:
        v = "contradicted"
    elif any(v.startswith("inconclusive") for v in verdicts):
        v = "inconclusive (underpowered)"
    else:
        v = "no effect (adequately powered)"
    detail = "; ".join(f"{r['test']}: {_pts(r['value'])} [{_pts(r['lo'])}, {_pts(r['hi'])}], p_adj={r['p_adj']:.2g}, "
                       f"MDE {r['mde'] * 100:.1f} → {r['verdict']}" for r in rows.to_dict("records"))
    top = _strongest(rows)
    shown = top.pop("test")
    if len(rows) > 1:
        detail = f"shown: {shown}; {detail}"
    return {"key": key, "claim": CLAIMS[key], "verdict": v, "detail": detail, **top}


def _claim_2(table: pd.DataFrame) -> dict:
    return _aggregate("claim 2", table)


def _claim_3(table: pd.DataFrame) -> dict:
    return _aggregate("claim 3", table)
