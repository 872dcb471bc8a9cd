"""The budget study's numbers: accuracy per (|S|, Q, strategy), crossovers, paired tests.

All read from a study directory's `results.sqlite` (`ptlab.studies.grid.store`): the axes
(task, seed_size, budget, strategy, seed, ratio) are its columns, the per-example
outcomes come from the `examples` table. Every cell is evaluated on the same
held-out examples, so a condition's outcomes form a (seeds × examples) matrix,
intervals resample example columns (`ptlab.evaluate.stats`), and two
strategies are compared with paired tests on the same examples; intervals and p-values include training-seed
variance as well as the examples' (`ptlab.evaluate.hierarchical`).
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
                    "queries_used": _sum(g, "synth/queries_used"), "paid": _sum(g, "teacher/paid"),
                    "cached": _sum(g, "teacher/cached"), "eval_overlap": _sum(g, "synth/eval_overlap"),
                    "train_steps": _sum(g, "train/steps") / len(g)})
    return pd.DataFrame(out)


def _curve(cells: pd.DataFrame, outcomes: dict, size: int, strategy: str) -> dict[int, np.ndarray]:
    g = cells[(cells["seed_size"] == size) & (cells["strategy"] == strategy)]
    return {int(q): _matrix(gq, outcomes) for q, gq in g.groupby("budget")}


def crossover_for(cells: pd.DataFrame, outcomes: dict, size: int, n_boot: int = 0, seed: int = 0) -> dict | None:
    """The NQ-over-AA crossover at one |S| (None when either strategy is missing), with a bootstrap over
    examples when `n_boot` > 0: the share of resamples with a crossover in range and a 95% interval of it."""
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
        found = []
        for _ in range(n_boot):
            idx = rng.integers(0, n, n)
            d = [a[q][:, idx].mean() - b[q][:, idx].mean() for q in qs]
            c = find_crossover(ratios, d)
            found.append(c.ratio if c.status == "crossover" else (0.0 if c.status == "always" else np.inf))
        f = np.array(found)
        out["boot_share_crossover"] = float(np.mean((f > 0) & np.isfinite(f)))
        out["boot_share_always"] = float(np.mean(f == 0))
        out["boot_share_none"] = float(np.mean(np.isinf(f)))
        lo, hi = np.percentile(f, [2.5, 97.5], method="inverted_cdf")  # no interpolation: f holds inf
        out["boot_lo"], out["boot_hi"] = float(lo), float(hi)  # inf: "no crossover in range" in that tail
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
    says = {"sig": "significant, p < 0.05", "dir": "not significant", "no": ""}
    if lo == "sig" and hi == "sig":
        kind = "Holm-adjusted " if adjusted else ""
        head = ("**Reproduced**: answer augmentation wins at the lowest budget ratio and new questions at the "
                f"highest, both significantly (paired tests over seeds and examples, {kind}p < 0.05).")
    elif lo != "no" and hi != "no":
        head = ("**Same direction, not fully significant**: answer augmentation is ahead at the lowest ratio "
                f"({says[lo]}) and new questions at the highest ({says[hi]}).")
    elif hi != "no":
        head = (f"**Partly reproduced**: new questions win at the highest ratio ({says[hi]}), but answer "
                "augmentation is not ahead at the lowest ratio.")
    elif lo != "no":
        head = (f"**Partly reproduced**: answer augmentation wins at the lowest ratio ({says[lo]}), but new "
                "questions do not overtake it by the highest ratio measured.")
    else:
        head = ("**Not reproduced**: the paper's pattern (answer augmentation best at low Q/|S|, new questions best "
                "at high Q/|S|) does not hold consistently (for every |S|) at either end of this study's range.")
    return f"{head} {detail}"


def crossover_text(c: dict) -> str:
    cross = Crossover(c["status"], c["ratio"], c["lo"], c["hi"], tuple(tuple(x) for x in c["crossings"]))
    text = f"|S| = {c['seed_size']}: {cross.describe(CHALLENGER, INCUMBENT)}"
    if "boot_share_crossover" in c:
        def show(v):
            return "∞ (none in range)" if not np.isfinite(v) else ("below range" if v == 0 else f"{v:.3g}")

        text += (f" — bootstrap over examples: crossover in range in {c['boot_share_crossover']:.0%} of resamples, "
                 f"NQ ahead everywhere in {c['boot_share_always']:.0%}, none in {c['boot_share_none']:.0%}; "
                 f"95% interval of the crossover ratio [{show(c['boot_lo'])}, {show(c['boot_hi'])}]")
    return text + "."
