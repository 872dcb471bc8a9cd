"""The budget study's numbers: accuracy per (|S|, Q, strategy), crossovers, paired tests.

All read from a study directory's `results.sqlite` (`ptlab.studies.grid.store`): the axes
(task, regime, exposure, seed_size, budget, strategy, seed, ratio) are its columns, the per-example
outcomes come from the `examples` table. Every cell is evaluated on the same
held-out examples, so a condition's outcomes form a (seeds × examples) matrix,
intervals resample example columns (`ptlab.evaluate.stats`), and two
strategies are compared with paired tests on the same examples; intervals and p-values include training-seed
variance as well as the examples' (`ptlab.evaluate.hierarchical`).

A study with several simulator regimes or exposure rules is analysed panel by
panel: a panel is one (regime, exposure) with the reference cells it shares
(`panels`); `panel_results` runs every analysis per panel and declares the
multiple-testing families across them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ptlab.errors import PtlabError
from ptlab.evaluate.hierarchical import Effect, did_effect, difference, mean_effect
from ptlab.studies.budget.crossover import Crossover, find_crossover

CHALLENGER, INCUMBENT = "new_question", "answer_augmentation"
STRATEGY_ORDER = ("answer_augmentation", "question_rephrase", "new_question")


class NotABudgetStudy(PtlabError):
    """The directory does not hold a finished budget study."""


def load(root: Path) -> tuple[dict, pd.DataFrame, dict]:
    """(manifest, cells, outcomes): one row per stored cell with its axes and metrics; cell id → 0/1 outcomes."""
    from ptlab.errors import ConfigError
    from ptlab.studies.budget.study import STUDY
    from ptlab.studies.grid.manifest import cell_ids, read_manifest
    from ptlab.studies.grid.run import DB
    from ptlab.studies.grid.store import ResultStore

    root = Path(root)
    if not root.is_dir():
        raise NotABudgetStudy(f"results dir {root}: not found")
    try:
        manifest = read_manifest(root, STUDY.study_format, STUDY.cell_version)
    except ConfigError as e:
        raise NotABudgetStudy(str(e)) from None
    if manifest is None:
        raise NotABudgetStudy(f"results dir {root}: not a budget study (no study.json); run `ptlab study budget` first")
    if not (root / DB).is_file():
        raise NotABudgetStudy(f"results dir {root}: no {DB} yet; run the study first")
    store = ResultStore(root / DB, create=False)
    res = store.results()
    ids = set(cell_ids(manifest))
    res = res[res["cell_id"].isin(ids)]
    if res.empty:
        raise NotABudgetStudy(f"results dir {root}: no finished cells")
    wide = res.pivot_table(index="cell_id", columns="metric", values="value", aggfunc="first")
    axes = res.drop_duplicates("cell_id").set_index("cell_id")[list(store.axes)]
    cells = axes.join(wide).reset_index()
    cells[["seed_size", "budget"]] = cells[["seed_size", "budget"]].astype(int)
    ex = store.examples()
    ex = ex[ex["cell_id"].isin(ids)].sort_values(["cell_id", "example_id"])
    outcomes = {cid: g["correct"].to_numpy(float) for cid, g in ex.groupby("cell_id")}
    return manifest, cells, outcomes


def _matrix(cells: pd.DataFrame, outcomes: dict) -> np.ndarray:
    """Seeds × examples outcomes of the cells of one condition (sorted by seed)."""
    rows = [outcomes[c] for c in cells.sort_values("seed")["cell_id"] if c in outcomes]
    return np.vstack(rows) if rows else np.zeros((0, 0))


def _sum(g: pd.DataFrame, col: str) -> float:
    return float(g[col].fillna(0).sum()) if col in g else 0.0


def condition_table(cells: pd.DataFrame, outcomes: dict) -> pd.DataFrame:
    """One row per (|S|, Q, strategy) incl. the references: accuracy [95% CI] over seeds and examples, data, cost."""
    out = []
    for (size, q, strategy), g in cells.groupby(["seed_size", "budget", "strategy"]):
        m = _matrix(g, outcomes)
        est = mean_effect(m)
        seed_sd = float(np.std(est.seed_values, ddof=1)) if len(est.seed_values) > 1 else float("nan")
        out.append({"seed_size": size, "budget": q, "ratio": q / size if size else 0.0, "strategy": strategy,
                    "seeds": len(g), "accuracy": est.value, "lo": est.lo, "hi": est.hi, "seed_sd": seed_sd,
                    "n_eval": est.n, "rows": _sum(g, "synth/rows") / len(g),
                    "unique_questions": _sum(g, "synth/unique_prompts") / len(g),
                    "unique_pairs": _sum(g, "synth/unique_pairs") / len(g),
                    "queries_used": _sum(g, "synth/queries_used"), "paid": _sum(g, "teacher/paid"),
                    "cached": _sum(g, "teacher/cached"), "eval_overlap": _sum(g, "synth/eval_overlap"),
                    "train_steps": _sum(g, "train/steps") / len(g)})
    return pd.DataFrame(out)


def _curve(cells: pd.DataFrame, outcomes: dict, size: int, strategy: str) -> dict[int, np.ndarray]:
    g = cells[(cells["seed_size"] == size) & (cells["strategy"] == strategy)]
    return {int(q): _matrix(gq, outcomes) for q, gq in g.groupby("budget")}


def crossover_for(cells: pd.DataFrame, outcomes: dict, size: int, n_boot: int = 0, seed: int = 0) -> dict | None:
    """The NQ-over-AA crossover at one |S| (None when either strategy is missing), with a bootstrap when
    `n_boot` > 0: the share of resamples with a crossover in range and a 95% interval of it.

    The bootstrap resamples both sources of variance, each with one index shared by every condition so the
    comparison stays paired: training seeds (rows: seed i of every condition is the same seed-set draw and
    training seed), when every condition has the same two or more; and held-out examples (columns)."""
    a, b = _curve(cells, outcomes, size, CHALLENGER), _curve(cells, outcomes, size, INCUMBENT)
    qs = sorted(q for q in set(a) & set(b) if a[q].size and b[q].size and a[q].shape[1] == b[q].shape[1])
    if not qs:
        return None
    diff = [a[q].mean() - b[q].mean() for q in qs]
    ratios = [q / size for q in qs]
    cross = find_crossover(ratios, diff)
    out = {"seed_size": size, "ratios": ratios, "diff": diff, **cross.as_dict()}
    if n_boot:
        rng = np.random.default_rng(seed)
        n = a[qs[0]].shape[1]
        seeds = {m.shape[0] for q in qs for m in (a[q], b[q])}
        n_seeds = seeds.pop() if len(seeds) == 1 else 0
        found = []
        for _ in range(n_boot):
            idx = rng.integers(0, n, n)
            rows = rng.integers(0, n_seeds, n_seeds) if n_seeds >= 2 else slice(None)
            d = [a[q][rows][:, idx].mean() - b[q][rows][:, idx].mean() for q in qs]
            c = find_crossover(ratios, d)
            found.append(c.ratio if c.status == "crossover" else (0.0 if c.status == "always" else np.inf))
        f = np.array(found)
        out["boot_share_crossover"] = float(np.mean((f > 0) & np.isfinite(f)))
        out["boot_share_always"] = float(np.mean(f == 0))
        out["boot_share_none"] = float(np.mean(np.isinf(f)))
        lo, hi = np.percentile(f, [2.5, 97.5], method="inverted_cdf")  # no interpolation: f holds inf
        out["boot_lo"], out["boot_hi"] = float(lo), float(hi)  # inf: "no crossover in range" in that tail
        out["boot_seeds"] = n_seeds >= 2
    return out


def crossovers(cells: pd.DataFrame, outcomes: dict, n_boot: int = 0) -> list[dict]:
    sizes = sorted(s for s in cells["seed_size"].unique() if s > 0)
    return [c for s in sizes if (c := crossover_for(cells, outcomes, int(s), n_boot)) is not None]


def end_tests(cells: pd.DataFrame, outcomes: dict) -> pd.DataFrame:
    """NQ − AA at the lowest and the highest budget of each |S|: paired on examples and seeds, 95% interval with
    seed and example variance (`ptlab.evaluate.hierarchical`)."""
    out = []
    for size in sorted(s for s in cells["seed_size"].unique() if s > 0):
        a, b = _curve(cells, outcomes, int(size), CHALLENGER), _curve(cells, outcomes, int(size), INCUMBENT)
        qs = sorted(set(a) & set(b))
        for end, q in (("lowest", qs[0] if qs else None), ("highest", qs[-1] if qs else None)):
            if q is None or a[q].shape[1] != b[q].shape[1]:
                continue
            out.append({"seed_size": int(size), "end": end, "budget": q, "ratio": q / size,
                        **_columns(difference(a[q], b[q]))})
    return pd.DataFrame(out)


def _columns(e: Effect) -> dict:
    """A paired comparison's columns: seeds (paired by index) and examples both in its interval and p."""
    return {"diff": e.value, "lo": e.lo, "hi": e.hi, "p": e.p, "se": e.se, "df": e.df, "seeds": e.seeds, "n": e.n}


def example_ids(root: Path) -> dict[str, tuple[str, ...]]:
    """Cell id → the held-out example ids it was evaluated on (sorted): to check every cell saw the same ones."""
    from ptlab.studies.grid.run import DB
    from ptlab.studies.grid.store import ResultStore

    ex = ResultStore(Path(root) / DB, create=False).examples()
    return {cid: tuple(sorted(map(str, g["example_id"]))) for cid, g in ex.groupby("cell_id")}


def strategy_comparisons(cells: pd.DataFrame, outcomes: dict) -> pd.DataFrame:
    """Every pair of strategies at every (|S|, Q): paired on the same examples and seeds, 95% interval with seed
    and example variance.

    One row per (|S|, Q, a, b) with a after b in STRATEGY_ORDER (so NQ − AA, QR − AA, NQ − QR); `p` is raw and
    `p_adj` Holm-adjusted within the declared family: every comparison at one |S| (all its budgets and pairs).
    """
    from ptlab.evaluate.multiple import adjust_families

    out = []
    for size in sorted(s for s in cells["seed_size"].unique() if s > 0):
        curves = {s: _curve(cells, outcomes, int(size), s) for s in STRATEGY_ORDER}
        for i, b in enumerate(STRATEGY_ORDER):
            for a in STRATEGY_ORDER[i + 1:]:
                for q in sorted(set(curves[a]) & set(curves[b])):
                    ma, mb = curves[a][q], curves[b][q]
                    if not ma.size or not mb.size or ma.shape[1] != mb.shape[1]:
                        continue
                    out.append({"seed_size": int(size), "budget": int(q), "ratio": q / size, "a": a, "b": b,
                                **_columns(difference(ma, mb))})
    df = pd.DataFrame(out, columns=["seed_size", "budget", "ratio", "a", "b", "diff", "lo", "hi", "p", "se", "df",
                                    "seeds", "n"])
    if df.empty:
        return df.assign(p_adj=pd.Series(dtype=float))
    return adjust_families(df, ["seed_size"], p_col="p", out_col="p_adj")


def crossover_tests(cells: pd.DataFrame, outcomes: dict) -> pd.DataFrame:
    """The crossover claim at each |S| as one paired test: how much NQ − AA grows from the lowest to the highest Q.

    The effect is (NQ − AA at the highest Q) − (NQ − AA at the lowest Q), a difference in differences on the same
    held-out examples (accuracy as a fraction), its interval and t-test p with seed and example variance
    (`ptlab.evaluate.hierarchical.did_effect`). Positive: new questions gain on answer augmentation as the budget
    grows. `p_adj`: Holm over the |S| values (the family of crossover claims).
    """
    from ptlab.evaluate.multiple import holm

    out = []
    for size in sorted(s for s in cells["seed_size"].unique() if s > 0):
        a, b = _curve(cells, outcomes, int(size), CHALLENGER), _curve(cells, outcomes, int(size), INCUMBENT)
        qs = sorted(q for q in set(a) & set(b) if a[q].size and b[q].size and a[q].shape[1] == b[q].shape[1])
        if len(qs) < 2:
            continue
        lo_q, hi_q = qs[0], qs[-1]
        if a[lo_q].shape[1] != a[hi_q].shape[1]:
            continue
        gap_hi = a[hi_q].mean() - b[hi_q].mean()
        gap_lo = a[lo_q].mean() - b[lo_q].mean()
        e = did_effect(a[hi_q], b[hi_q], a[lo_q], b[lo_q], paired_examples=True)
        out.append({"seed_size": int(size), "low_budget": int(lo_q), "high_budget": int(hi_q),
                    "low_ratio": lo_q / size, "high_ratio": hi_q / size, "gap_low": float(gap_lo),
                    "gap_high": float(gap_hi), **_columns(e)})
    df = pd.DataFrame(out, columns=["seed_size", "low_budget", "high_budget", "low_ratio", "high_ratio", "gap_low",
                                    "gap_high", "diff", "lo", "hi", "p", "se", "df", "seeds", "n"])
    df["p_adj"] = holm(df["p"].to_numpy(float)) if len(df) else pd.Series(dtype=float)
    return df


def _side(df: pd.DataFrame, sign: int, alpha: float) -> str:
    """'sig' (every |S| in the expected direction, p < alpha), 'dir' (expected direction), or 'no'."""
    right = (np.sign(df["diff"]) == sign).all()
    return "sig" if right and (df["p"] < alpha).all() else "dir" if right else "no"


def verdict(tests: pd.DataFrame, alpha: float = 0.05, adjusted: bool = False) -> str:
    """One sentence: does this study reproduce "AA best at low ratios, NQ best at high ratios"?

    `adjusted`: the `p` column holds Holm-adjusted p-values (the sentence says so)."""
    if tests.empty:
        return "The study has no answer_augmentation / new_question pair to compare, so it cannot test the finding."
    low, high = tests[tests["end"] == "lowest"], tests[tests["end"] == "highest"]
    lo, hi = _side(low, -1, alpha), _side(high, +1, alpha)
    p_name = "Holm-adjusted p" if adjusted else "p"

    def fmt(df):
        return "; ".join(f"|S|={r.seed_size}, Q/|S|={r.ratio:g}: {r.diff * 100:+.1f} points "
                         f"[{r.lo * 100:+.1f}, {r.hi * 100:+.1f}], {p_name}={r.p:.2g}" for r in df.itertuples())

    detail = f"new_question − answer_augmentation at the lowest ratio: {fmt(low)}; at the highest: {fmt(high)}."
    leads = {"dir": "leads, but not significantly", "no": "does not lead"}
    if lo == "sig" and hi == "sig":
        kind = "Holm-adjusted " if adjusted else ""
        head = ("**Reproduced**: answer augmentation wins at the lowest budget ratio and new questions at the "
                f"highest, both significantly (paired tests over seeds and examples, {kind}p < 0.05).")
    elif hi == "sig":
        head = ("**Partly reproduced**: new questions win at the highest ratio (significant, p < 0.05); at the "
                f"lowest, answer augmentation {leads[lo]}.")
    elif lo == "sig":
        head = ("**Partly reproduced**: answer augmentation wins at the lowest ratio (significant, p < 0.05); at "
                f"the highest, new questions {leads[hi]}.")
    elif lo == "dir" and hi == "dir":
        head = ("**Same direction, not significant**: answer augmentation is ahead at the lowest ratio and new "
                "questions at the highest, neither significantly.")
    else:
        head = ("**Not reproduced**: neither end is significantly in the paper's direction (answer augmentation best "
                "at low Q/|S|, new questions best at high Q/|S|) for every |S|.")
    return f"{head} {detail}"


def crossover_text(c: dict) -> str:
    cross = Crossover(c["status"], c["ratio"], c["lo"], c["hi"], tuple(tuple(x) for x in c["crossings"]))
    text = f"|S| = {c['seed_size']}: {cross.describe(CHALLENGER, INCUMBENT)}"
    if "boot_share_crossover" in c:
        over = "seeds and examples" if c.get("boot_seeds") else "examples"
        text += (f" — bootstrap over {over}: crossover in range in {c['boot_share_crossover']:.0%} of resamples, "
                 f"NQ ahead everywhere in {c['boot_share_always']:.0%}, none in {c['boot_share_none']:.0%}; "
                 f"95% interval of the crossover ratio [{show_ratio(c['boot_lo'])}, {show_ratio(c['boot_hi'])}]")
    return text + "."


def show_ratio(v: float | None) -> str:
    """A bootstrap bound of the crossover ratio: infinite is 'none in range', 0 is 'below the range'."""
    if v is None or not np.isfinite(v):
        return "∞ (none in range)"
    return "below range" if v == 0 else f"{v:.3g}"


# ---- panels: one (regime, exposure) at a time ------------------------------------------------------------------
PANEL = ("regime", "exposure")
# The paper's finding, in this study's terms: answer augmentation ahead at low Q/|S|, new questions at high, the
# curves crossing at roughly these ratios (Chan et al. 2024 report ~12-50 depending on |S| and the student).
PAPER_CROSSOVER = (12.0, 50.0)


def panels(cells: pd.DataFrame, order: dict | None = None) -> list[tuple[str, str, pd.DataFrame]]:
    """(regime, exposure, cells) per panel: its strategy cells plus the references it shares (the base, and the
    seeds_only cells trained under the same exposure rule). `order`: {"regime": [...], "exposure": [...]}, the
    config's axis order (default: sorted)."""
    strat = cells[cells["strategy"].isin(STRATEGY_ORDER)]
    keys = {tuple(k) for k in strat[list(PANEL)].drop_duplicates().itertuples(index=False)}
    rank = {ax: {v: i for i, v in enumerate((order or {}).get(ax, []))} for ax in PANEL}
    out = []
    for regime, exposure in sorted(keys, key=lambda k: (rank["regime"].get(k[0], 1e9), k[0],
                                                        rank["exposure"].get(k[1], 1e9), k[1])):
        own = strat[(strat["regime"] == regime) & (strat["exposure"] == exposure)]
        refs = cells[(cells["strategy"] == "base")
                     | ((cells["strategy"] == "seeds_only") & (cells["exposure"] == exposure))]
        out.append((regime, exposure, pd.concat([refs, own], ignore_index=True)))
    return out


def pattern(low: float, high: float) -> str:
    """Which strategy leads at each end of the measured Q/|S| range (NQ − AA at the lowest and highest ratio)."""
    lead = lambda d: "NQ" if d > 0 else "AA" if d < 0 else "tie"  # noqa: E731
    lo, hi = lead(low), lead(high)
    if lo == "AA" and hi == "NQ":
        return "AA low → NQ high (the paper's)"
    if lo == hi:
        return f"{lo} at both ends" if lo != "tie" else "tie at both ends"
    return f"{lo} low → {hi} high"


def panel_results(cells: pd.DataFrame, outcomes: dict, order: dict | None = None, n_boot: int = 0) -> dict:
    """Every analysis of every panel, with `regime` and `exposure` columns, and the families declared across them:
    strategy comparisons Holm-adjusted within (regime, exposure, |S|); crossover tests Holm-adjusted over every
    crossover claim of the study (all panels and sizes), since a sensitivity study asks them together."""
    from ptlab.evaluate.multiple import holm

    tables, tests, comps, ctests, cross = [], [], [], [], []
    for regime, exposure, g in panels(cells, order):
        tag = {"regime": regime, "exposure": exposure}
        tables.append(condition_table(g, outcomes).assign(**tag))
        tests.append(end_tests(g, outcomes).assign(**tag))
        comps.append(strategy_comparisons(g, outcomes).assign(**tag))
        ctests.append(crossover_tests(g, outcomes).assign(**tag))
        cross += [{**tag, **c} for c in crossovers(g, outcomes, n_boot)]
    cat = lambda parts: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()  # noqa: E731
    ct = cat(ctests)
    if not ct.empty:
        ct["p_adj"] = holm(ct["p"].to_numpy(float))
    return {"table": cat(tables), "end_tests": cat(tests), "comparisons": cat(comps), "crossover_tests": ct,
            "crossovers": cross}


def sensitivity_table(results: dict) -> pd.DataFrame:
    """One row per (regime, exposure, |S|): NQ − AA at both ends with intervals, the pattern, the crossover ratio
    and its bootstrap interval, and whether it matches the paper's finding (pattern and crossover range)."""
    ends = results["end_tests"]
    by = {(c["regime"], c["exposure"], c["seed_size"]): c for c in results["crossovers"]}
    rows = []
    if ends.empty:
        return pd.DataFrame(rows)
    for (regime, exposure, size), g in ends.groupby(["regime", "exposure", "seed_size"], sort=False):
        low, high = g[g["end"] == "lowest"], g[g["end"] == "highest"]
        if low.empty or high.empty:
            continue
        lo, hi = low.iloc[0], high.iloc[0]
        c = by.get((regime, exposure, int(size)), {})
        shape = pattern(lo["diff"], hi["diff"])
        in_range = c.get("status") == "crossover" and PAPER_CROSSOVER[0] <= c["ratio"] <= PAPER_CROSSOVER[1]
        both_sig = lo["hi"] < 0 and hi["lo"] > 0
        rows.append({"regime": regime, "exposure": exposure, "seed_size": int(size),
                     "low_ratio": lo["ratio"], "gap_low": lo["diff"], "gap_low_lo": lo["lo"], "gap_low_hi": lo["hi"],
                     "high_ratio": hi["ratio"], "gap_high": hi["diff"], "gap_high_lo": hi["lo"],
                     "gap_high_hi": hi["hi"], "pattern": shape, "status": c.get("status"),
                     "crossover": c.get("ratio"), "boot_lo": c.get("boot_lo"), "boot_hi": c.get("boot_hi"),
                     "paper_pattern": shape.startswith("AA low → NQ high"), "paper_pattern_significant": both_sig,
                     "crossover_in_paper_range": bool(in_range)})
    return pd.DataFrame(rows)
