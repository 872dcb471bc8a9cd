"""The budget study's report: report.md, report.html (self-contained), PNGs, table.md, conditions.csv, crossover.json.

It opens with what the study can conclude: the **findings** (the crossover claim
at each seed-set size |S|: how much new_question − answer_augmentation grows
from the lowest to the highest budget Q, Holm-adjusted over |S|, with a verdict
that weighs the interval against a declared smallest effect of interest), the
**design checks** (budget respected, the same held-out examples everywhere,
seeds, train/eval question overlap, power, a complete grid) and the headline
figure (accuracy vs budget per strategy with 95% intervals). Then the details:
setup; does the study reproduce "answer augmentation best at low Q/|S|, new
questions best at high Q/|S|"; the NQ − AA difference along Q/|S| with the
crossover; every paired strategy comparison at every (|S|, Q), raw and
Holm-adjusted p; the full table with what each condition cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ptlab.atomic import write_json, write_text
from ptlab.report.colours import colour
from ptlab.report.document import Document, _md_table
from ptlab.report.figures import plt, png
from ptlab.report.verdicts import NOT_TESTED, Check, Finding, fmt_mde, fmt_p
from ptlab.studies.budget.analysis import (
    CHALLENGER,
    INCUMBENT,
    PAPER_CROSSOVER,
    STRATEGY_ORDER,
    crossover_text,
    example_ids,
    load,
    panel_results,
    sensitivity_table,
    show_ratio,
    verdict,
)

# The crossover claim's expected effect: how much new_question − answer_augmentation (accuracy, as a fraction)
# should grow from the lowest to the highest budget of a grid that spans the crossover. Chan et al. 2024
# ("Balancing Cost and Effectiveness of Synthetic Data Generation Strategies for LLMs", arXiv 2409.19759; see
# ../shared/REFERENCES.md) report where the strategies cross (Q/|S| roughly 12-50), not a gap size we can carry
# over, so this is a declared smallest effect of interest: 5 accuracy points, below which which strategy to buy
# would not matter in practice. The verdict calls a null result "no effect" only when the study could detect this.
EXPECTED_CROSSOVER_GAIN = 0.05
ALPHA = 0.05
POWER = 0.8


def curves_figure(table: pd.DataFrame) -> bytes:
    """Accuracy vs Q (log scale) per strategy, one panel per |S|; references as horizontal lines."""
    sizes = sorted(s for s in table["seed_size"].unique() if s > 0)
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 3.9), squeeze=False, sharey=True)
    base = table[table["strategy"] == "base"]
    for ax, size in zip(axes[0], sizes):
        t = table[table["seed_size"] == size]
        for strategy in [s for s in STRATEGY_ORDER if s in set(t["strategy"])]:
            g = t[t["strategy"] == strategy].sort_values("budget")
            dodge = 1.06 ** (STRATEGY_ORDER.index(strategy) - 1)  # keep overlapping intervals apart
            ax.errorbar(g["budget"] * dodge, g["accuracy"], yerr=[g["accuracy"] - g["lo"], g["hi"] - g["accuracy"]],
                        color=colour(strategy), marker="o", capsize=3, label=strategy)
        seeds_only = t[t["strategy"] == "seeds_only"]
        if not seeds_only.empty:
            r = seeds_only.iloc[0]
            ax.axhline(r["accuracy"], color=colour("seeds_only"), ls="--", lw=1,
                       label=f"seeds only ({r['accuracy']:.2f})")
        if not base.empty:
            ax.axhline(base.iloc[0]["accuracy"], color=colour("base"), ls=":", lw=1.2,
                       label=f"base model ({base.iloc[0]['accuracy']:.2f})")
        ax.set_xscale("log", base=2)
        qs = sorted(t[t["budget"] > 0]["budget"].unique())
        ax.set_xticks(qs, [f"{q}\n({q / size:g})" for q in qs], fontsize=8)
        ax.set_xlabel("teacher budget Q  (Q/|S|)")
        ax.set_title(f"|S| = {size}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out accuracy (95% CI)")
    axes[0][-1].legend(fontsize=7, loc="best")
    return png(fig)


def difference_figure(cross: list[dict]) -> bytes:
    """new_question − answer_augmentation along Q/|S|, one line per (regime, |S|), one panel per exposure rule,
    crossovers marked; the paper's crossover range shaded.

    The lines are regimes and seed-set sizes, not arms, so they take shades of grey and their own markers (arm
    colours stay reserved for strategies)."""
    exposures = list(dict.fromkeys(c.get("exposure", "epochs") for c in cross))
    fig, axes = plt.subplots(1, len(exposures), figsize=(6.5 * len(exposures), 3.8), squeeze=False, sharey=True)
    shades = plt.get_cmap("Greys")
    markers = "osD^vP*X"
    multi = len({c.get("regime") for c in cross}) > 1
    for ax, exposure in zip(axes[0], exposures):
        lines = [c for c in cross if c.get("exposure", "epochs") == exposure]
        for i, c in enumerate(lines):
            color = shades(0.95 - 0.55 * i / max(1, len(lines) - 1))
            label = (f"{c['regime']}, " if multi else "") + f"|S| = {c['seed_size']}"
            ax.plot(c["ratios"], np.array(c["diff"]) * 100, marker=markers[i % len(markers)], color=color,
                    label=label)
            if c["status"] == "crossover":
                ax.axvline(c["ratio"], color=color, ls="--", lw=1)
        ax.axvspan(*PAPER_CROSSOVER, color="grey", alpha=0.08, label="paper's crossovers (12–50)")
        ax.axhline(0, color="grey", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("budget ratio Q/|S|")
        ax.set_title(f"exposure: {exposure}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"{CHALLENGER} − {INCUMBENT}\n(accuracy points)", fontsize=9)
    return png(fig)


def _panel_columns(t: pd.DataFrame) -> dict:
    """`regime` / `exposure` columns, where the study has more than one of either."""
    return {name: t[name] for name in ("regime", "exposure") if name in t and t[name].nunique() > 1}


def _fmt_table(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    order = {s: i for i, s in enumerate(("base", "seeds_only", *STRATEGY_ORDER))}
    t["_o"] = t["strategy"].map(order)
    t = t.sort_values([c for c in ("regime", "exposure") if c in t] + ["seed_size", "budget", "_o"], kind="stable")
    return pd.DataFrame({
        **_panel_columns(t), "|S|": t["seed_size"].map(lambda v: v or "–"), "Q": t["budget"], "Q/|S|": t["ratio"].map(lambda v: f"{v:g}"),
        "strategy": t["strategy"], "accuracy [95% CI]": t.apply(lambda r: f"{r['accuracy']:.3f} [{r['lo']:.3f}, "
                                                                          f"{r['hi']:.3f}]", axis=1),
        "seeds": t["seeds"], "rows": t["rows"].map(lambda v: f"{v:.0f}"),
        "questions": t["unique_questions"].map(lambda v: f"{v:.0f}"),
        "distinct Q–A pairs": t["unique_pairs"].map(lambda v: f"{v:.0f}"),
        "steps": t["train_steps"].map(lambda v: f"{v:.0f}"),
        "queries used": t["queries_used"].map(lambda v: f"{v:.0f}"), "paid": t["paid"].map(lambda v: f"{v:.0f}"),
        "cached": t["cached"].map(lambda v: f"{v:.0f}"),
    })


def simulator_text(teacher: dict) -> str:
    """The simulated teacher's declared assumptions, as `name=value` pairs (every one, in the config's order)."""
    return ", ".join(f"{k}={v}" for k, v in teacher.get("simulator", {}).items())


def _teacher_text(cfg: dict) -> str:
    teacher = cfg.get("teacher", {})
    if teacher.get("backend") != "simulated":
        return f" Teacher: `{teacher.get('backend')}:{teacher.get('model')}` (a real model)."
    regimes = {name: cfg.get("regimes", {}).get(name, {}) for name in cfg.get("axes", {}).get("regime", [])}
    varied = "; ".join(f"`{name}`: " + (", ".join(f"{k}={v}" for k, v in o.items()) or "as declared")
                       for name, o in regimes.items())
    return (" The teacher is **simulated** (`ptlab.synth`'s simulated backend answers, rewords and invents questions "
            "through the task generator): it is not a language model, so each result holds under its declared "
            f"assumptions — {simulator_text(teacher)}" + (f"; regimes vary them: {varied}" if len(regimes) > 1 else "")
            + ". The Sensitivity section shows where the crossover moves as they change.")


def _setup_text(manifest: dict, cells: pd.DataFrame, table: pd.DataFrame) -> str:
    cfg = manifest.get("config", {})
    t, a = cfg.get("train", {}), cfg.get("axes", {})
    rules = {"epochs": f"{t.get('epochs'):g} epochs over its rows (the paper's rule)",
             "steps": f"{t.get('steps')} optimizer steps, whatever its rows (equal compute)"}
    exposure = " and, side by side, ".join(rules[e] for e in a.get("exposure", ["epochs"]) if e in rules)
    seeds = (" Every strategy's training rows include the seed set's own solutions (our reading of the paper: the "
             "augmented data is added to the seed data; the paper's text leaves this uncertain)."
             if cfg.get("data", {}).get("include_seeds") else " Strategies train on the generated rows alone.")
    n_eval = int(table["n_eval"].max()) if not table.empty else 0
    return (f"Task `{cfg.get('task')}` (knobs {cfg.get('seeds', {}).get('knobs') or 'default'}), student "
            f"`{cfg.get('model')}` (SFT with ptlab's engine, {exposure}; batch {t.get('batch_size')}, lr {t.get('lr')}, "
            f"{t.get('scheduler')}). Grid: |S| ∈ {a.get('seed_size')}, Q ∈ {a.get('budget')}, strategies "
            f"{a.get('strategy')}, seeds {a.get('seed')}, regimes {a.get('regime')}, exposure {a.get('exposure')} "
            f"({len(cells)} cells stored). Every cell is evaluated greedily on the same {n_eval} held-out `eval_id` "
            "examples; training rows that repeat a held-out question are dropped. Intervals "
            "are 95% and include training-seed and example variance (crossed, Satterthwaite t: "
            "`ptlab.evaluate.hierarchical`); differences are paired on examples and seeds. Strategies go round-robin "
            "over the seeds in order, so a budget too small for one pass reaches only the first seeds."
            f"{seeds}{_teacher_text(cfg)}")


def _points(v: float) -> str:
    return f"{v * 100:+.1f}"


def _interval(lo: float, hi: float) -> str:
    return f"[{_points(lo)}, {_points(hi)}]"


def _where(c: dict | None) -> str:
    if c is None:
        return "no crossover computed"
    if c["status"] == "crossover":
        return f"they cross at Q/|S| ≈ {c['ratio']:.3g}"
    if c["status"] == "always":
        return "new_question is ahead at every Q measured (any crossover lies below the range)"
    return "new_question is not ahead at the largest Q (no crossover in range)"


def _se(se: float) -> float:
    """A standard error of 0 means the outcomes did not vary at all (e.g. every cell scores 0): nothing can be
    concluded about power from it, so it reads as unknown (the verdict: inconclusive), never as 'adequately powered'."""
    return se if se > 0 else float("nan")


def findings(ctests: pd.DataFrame, cross: list[dict], keys: list[tuple]) -> list[Finding]:
    """One finding per (regime, exposure, |S|): the crossover claim, tested as the growth of NQ − AA from the
    lowest to the highest Q.

    The verdict (`ptlab.evaluate.power.verdict`) reads the Holm-adjusted p (family: every crossover claim of the
    study) and weighs the interval against `EXPECTED_CROSSOVER_GAIN`; the effect's se and degrees of freedom are
    the test's own. The claim names the regime and exposure rule only where the study has several."""
    from ptlab.evaluate.power import mde
    from ptlab.evaluate.power import verdict as power_verdict

    by_key = {(c["regime"], c["exposure"], c["seed_size"]): c for c in cross}
    rows = {(r.regime, r.exposure, int(r.seed_size)): r for r in ctests.itertuples()}
    regimes, exposures = {k[0] for k in keys}, {k[1] for k in keys}
    out = []
    for key in keys:
        regime, exposure, size = key
        where = ", ".join(([f"regime {regime}"] if len(regimes) > 1 else [])
                          + ([f"{exposure} rule"] if len(exposures) > 1 else []))
        claim = (f"{where}: " if where else "") + f"|S| = {size}: new_question overtakes answer_augmentation as the budget Q grows"
        r = rows.get(key)
        if r is None:
            out.append(Finding(claim, NOT_TESTED, detail="needs new_question and answer_augmentation at two or more "
                               "budgets, evaluated on the same examples"))
            continue
        effect = {"value": r.diff, "lo": r.lo, "hi": r.hi, "se": _se(r.se), "df": r.df}
        v = power_verdict(effect, r.p_adj, EXPECTED_CROSSOVER_GAIN, alpha=ALPHA, power=POWER, direction=+1)
        m = mde(_se(r.se), alpha=ALPHA, power=POWER, df=r.df)
        detail = (f"NQ − AA {_points(r.gap_low)} points at Q = {r.low_budget} (Q/|S| = {r.low_ratio:g}), "
                  f"{_points(r.gap_high)} at Q = {r.high_budget} (Q/|S| = {r.high_ratio:g}); "
                  f"{_where(by_key.get(key))}; {fmt_mde(m)} vs {EXPECTED_CROSSOVER_GAIN * 100:g} of interest")
        out.append(Finding(claim, v, f"{_points(r.diff)} points", _interval(r.lo, r.hi), fmt_p(r.p),
                           fmt_p(r.p_adj), detail))
    return out


FINDINGS_NOTE = (
    "Effect: how much new_question − answer_augmentation accuracy (points) grows from the lowest to the highest "
    "budget Q at that |S| — a paired difference in differences on the same held-out examples, with a 95% "
    "interval and t-test p over seeds and examples, Holm-adjusted over every crossover claim of the study. "
    "**supported** / **contradicted**: Holm p < 0.05 with the effect in / against the claimed direction; "
    "otherwise **no effect (adequately powered)** when the study could detect the smallest effect of interest "
    f"({EXPECTED_CROSSOVER_GAIN * 100:g} points at 80% power: declared, since the paper reports where the strategies "
    "cross, Q/|S| ≈ 12–50, not by how much), else **inconclusive (underpowered)**.")


def design_checks(manifest: dict, cells: pd.DataFrame, ids: dict[str, tuple], ctests: pd.DataFrame,
                  outcomes: dict) -> list[Check]:
    """The design's validity checks, from what the study stored (cells' metrics, example ids, the manifest)."""
    from ptlab.evaluate.power import mde

    cfg = manifest.get("config", {})
    checks = []
    strat = cells[cells["strategy"].isin(STRATEGY_ORDER)]
    name = "Teacher budget respected (replies used and paid ≤ Q, every cell)"
    cols = [c for c in ("synth/queries_used", "teacher/paid") if c in strat.columns]
    if strat.empty or not cols:
        checks.append(Check(name, None, "no teacher accounting stored"))
    else:
        q = strat["budget"].astype(float)
        worst = {c: float((strat[c].fillna(0) / q).max()) for c in cols}
        over = strat[np.logical_or.reduce([strat[c].fillna(0) > q for c in cols])]
        paid = float(strat["teacher/paid"].fillna(0).sum()) if "teacher/paid" in strat.columns else float("nan")
        detail = (f"{len(strat)} cells; at most {worst.get('synth/queries_used', float('nan')):.0%} of Q used and "
                  f"{worst.get('teacher/paid', float('nan')):.0%} paid; {paid:.0f} replies paid in all")
        if not over.empty:
            detail = f"{len(over)} cells over budget, e.g. {', '.join(over['cell_id'].head(3))}"
        checks.append(Check(name, over.empty, detail))

    name = "Same held-out examples for every cell"
    n_cfg = cfg.get("data", {}).get("n_eval")
    sets = {ids[c] for c in cells["cell_id"] if c in ids}
    missing = [c for c in cells["cell_id"] if c not in ids]
    if not sets:
        checks.append(Check(name, None, "no per-example outcomes stored"))
    elif len(sets) == 1 and not missing:
        n = len(next(iter(sets)))
        ok = n_cfg is None or n == int(n_cfg)
        checks.append(Check(name, ok, f"the same {n} examples in all {len(cells)} cells"
                            + ("" if ok else f" (config asks for {n_cfg})")))
    else:
        checks.append(Check(name, False, f"{len(sets)} different example sets"
                            + (f"; {len(missing)} cells have no outcomes" if missing else "")))

    name = "Seeds per condition (≥ 2, the same for every condition)"
    runs = cells[cells["strategy"] != "base"]
    if runs.empty:
        checks.append(Check(name, None, "no trained cells"))
    else:
        counts = runs.groupby(["regime", "exposure", "seed_size", "budget", "strategy"])["seed"].nunique()
        want = len(cfg.get("axes", {}).get("seed", [])) or int(counts.max())
        lo_n, hi_n = int(counts.min()), int(counts.max())
        if lo_n == hi_n == want and want >= 2:
            checks.append(Check(name, True, f"{want} seeds in each of {len(counts)} conditions"))
        elif lo_n == hi_n == want:
            checks.append(Check(name, False, "1 seed per condition: intervals cover the choice of held-out "
                                             "examples, not training randomness"))
        else:
            checks.append(Check(name, False, f"{lo_n}–{hi_n} seeds per condition, {want} configured "
                                             "(unfinished cells?)"))

    name = "Outcomes vary (strategies off the floor and the ceiling)"
    acc = [float(np.mean(outcomes[c])) for c in strat["cell_id"] if c in outcomes and len(outcomes[c])]
    if not acc:
        checks.append(Check(name, None, "no strategy cell evaluated"))
    else:
        floor, ceiling = sum(a == 0 for a in acc), sum(a == 1 for a in acc)
        stuck = floor + ceiling == len(acc)
        checks.append(Check(name, not stuck, f"accuracy {min(acc):.2f}–{max(acc):.2f} over {len(acc)} strategy cells"
                            + ("; every cell scores 0 or 1, so no comparison can show a difference" if stuck else
                               f"; {floor} at 0, {ceiling} at 1" if floor or ceiling else "")))

    name = "Training questions disjoint from held-out questions"
    if "synth/eval_overlap" not in cells.columns or runs.empty:
        checks.append(Check(name, None, "overlap not recorded"))
    else:
        ov = runs["synth/eval_overlap"].fillna(0)
        removed = float(runs.get("synth/eval_overlap_removed", pd.Series(dtype=float)).fillna(0).sum())
        dropped = f" ({removed:.0f} generated rows that repeated one were dropped before training)" if removed else ""
        n_cells = int((ov > 0).sum())
        checks.append(Check(name, bool(ov.sum() == 0), "no training row repeats a held-out question" + dropped
                            if ov.sum() == 0 else f"{ov.sum():.0f} training rows in {n_cells} cells repeat a "
                            "held-out question"))

    name = f"Power: the crossover test detects {EXPECTED_CROSSOVER_GAIN * 100:g} points (80% power, α = 0.05)"
    if ctests.empty:
        checks.append(Check(name, None, "no crossover test (see Findings)"))
    else:
        mdes = [(_claim_key(r), mde(_se(r.se), alpha=ALPHA, power=POWER, df=r.df), r.diff)
                for r in ctests.itertuples()]
        ok = all(math.isfinite(m) and m <= EXPECTED_CROSSOVER_GAIN for _, m, _ in mdes)
        checks.append(Check(name, ok, "; ".join(f"{k}: {fmt_mde(m)} (observed {_points(d)})" for k, m, d in mdes)))

    planned = manifest.get("cells")
    if planned is not None:
        checks.append(Check("Every configured cell finished", len(cells) >= len(planned),
                            f"{len(cells)} of {len(planned)} cells stored"))
    return checks


def _claim_key(r) -> str:
    return f"{r.regime}/{r.exposure}, |S| = {int(r.seed_size)}"


def comparison_table(comps: pd.DataFrame) -> pd.DataFrame:
    """Every paired strategy comparison, raw and Holm-adjusted p (family: every comparison of one regime, exposure
    rule and |S|)."""
    if comps.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        **_panel_columns(comps), "|S|": comps["seed_size"], "Q": comps["budget"], "Q/|S|": comps["ratio"].map(lambda v: f"{v:g}"),
        "comparison": comps["a"] + " − " + comps["b"], "difference (points)": comps["diff"].map(_points),
        "95% interval": [_interval(lo, hi) for lo, hi in zip(comps["lo"], comps["hi"])],
        "p (raw)": comps["p"].map(fmt_p), "p (Holm)": comps["p_adj"].map(fmt_p),
    })


def _adjusted_end_tests(tests: pd.DataFrame, comps: pd.DataFrame) -> pd.DataFrame:
    """The end tests with `p_adj`: their Holm-adjusted p from the comparison family (the same paired tests)."""
    t = tests.copy()
    if t.empty:
        return t.assign(p_adj=pd.Series(dtype=float))
    keys = ["regime", "exposure", "seed_size", "budget"]
    adj = {} if comps.empty else comps[(comps["a"] == CHALLENGER) & (comps["b"] == INCUMBENT)].set_index(
        keys)["p_adj"].to_dict()
    t["p_adj"] = [adj.get((r, e, int(s), int(q)), float("nan"))
                  for r, e, s, q in zip(t["regime"], t["exposure"], t["seed_size"], t["budget"])]
    return t


def sensitivity_rows(sens: pd.DataFrame) -> pd.DataFrame:
    """The sensitivity table as shown: one row per (regime, exposure, |S|)."""
    if sens.empty:
        return pd.DataFrame()
    cross = [show_ratio(c) if st == "crossover" else ("below range" if st == "always" else "none in range")
             for c, st in zip(sens["crossover"], sens["status"])]
    return pd.DataFrame({
        "regime": sens["regime"], "exposure": sens["exposure"], "|S|": sens["seed_size"],
        "NQ − AA at lowest Q/|S|": [f"{_points(d)} {_interval(lo, hi)} (at {r:g})" for d, lo, hi, r in
                                    zip(sens["gap_low"], sens["gap_low_lo"], sens["gap_low_hi"], sens["low_ratio"])],
        "NQ − AA at highest Q/|S|": [f"{_points(d)} {_interval(lo, hi)} (at {r:g})" for d, lo, hi, r in
                                     zip(sens["gap_high"], sens["gap_high_lo"], sens["gap_high_hi"],
                                         sens["high_ratio"])],
        "pattern": sens["pattern"], "crossover Q/|S|": cross,
        "bootstrap 95%": [f"[{show_ratio(lo)}, {show_ratio(hi)}]" for lo, hi in zip(sens["boot_lo"], sens["boot_hi"])],
    })


def paper_regime_text(sens: pd.DataFrame) -> str:
    """Which regimes (and exposure rules) give the paper's finding: AA ahead at the lowest ratio, NQ at the highest,
    crossing at Q/|S| ≈ 12–50."""
    if sens.empty:
        return "No regime has both strategies at two or more budgets, so none can be compared with the paper."
    lo, hi = PAPER_CROSSOVER
    like = sens[sens["paper_pattern"]]
    name = lambda r: f"`{r.regime}` ({r.exposure}, |S| = {r.seed_size})"  # noqa: E731
    if like.empty:
        shapes = "; ".join(f"{name(r)}: {r.pattern}" for r in sens.itertuples())
        return (f"**No regime reproduces the paper's pattern** (answer augmentation ahead at low Q/|S|, new questions "
                f"at high, crossing at ≈ {lo:g}–{hi:g}): {shapes}.")
    parts = []
    for r in like.itertuples():
        where = (f"crossing at {r.crossover:.3g}, inside the paper's {lo:g}–{hi:g}" if r.crossover_in_paper_range
                 else f"crossing at {show_ratio(r.crossover)}, outside the paper's {lo:g}–{hi:g}")
        sig = "both ends significant" if r.paper_pattern_significant else "not significant at both ends"
        parts.append(f"{name(r)} ({where}; {sig})")
    others = sens[~sens["paper_pattern"]]
    rest = ("; elsewhere: " + "; ".join(f"{name(r)}: {r.pattern}" for r in others.itertuples())) if len(others) else ""
    return (f"The paper's finding (answer augmentation ahead at low Q/|S|, new questions at high) corresponds to: "
            f"{'; '.join(parts)}{rest}.")


def _regime_table(cfg: dict) -> pd.DataFrame:
    """Each regime's declared simulator parameters (the overrides marked), for the sensitivity section."""
    base = cfg.get("teacher", {}).get("simulator", {})
    rows = []
    for name in cfg.get("axes", {}).get("regime", []):
        o = cfg.get("regimes", {}).get(name, {})
        rows.append({"regime": name, **{k: (f"**{o[k]}**" if k in o else str(v)) for k, v in {**base, **o}.items()}})
    return pd.DataFrame(rows)


def build_document(root: Path) -> tuple[Document, pd.DataFrame, dict, pd.DataFrame]:
    """(the report, its results table, the crossover summary, the condition table it was made from)."""
    root = Path(root)
    manifest, cells, outcomes = load(root)
    cfg = manifest.get("config", {})
    order = {ax: cfg.get("axes", {}).get(ax, []) for ax in ("regime", "exposure")}
    results = panel_results(cells, outcomes, order, n_boot=1000)
    table, cross, tests = results["table"], results["crossovers"], results["end_tests"]
    comps, ctests = results["comparisons"], results["crossover_tests"]
    sens = sensitivity_table(results)
    paper = paper_regime_text(sens)
    keys = [(r, e, int(sz)) for (r, e), g in table.groupby(["regime", "exposure"], sort=False)
            for sz in sorted(g["seed_size"].unique()) if sz > 0]
    found = findings(ctests, cross, keys)
    checks = design_checks(manifest, cells, example_ids(root), ctests, outcomes)
    adjusted = _adjusted_end_tests(tests, comps)
    multi = len({k[:2] for k in keys}) > 1

    doc = Document("Synthetic data under a budget: answer augmentation vs question rephrase vs new question")
    doc.findings(found, note=FINDINGS_NOTE)
    doc.checks(checks)
    first = table[(table["regime"] == keys[0][0]) & (table["exposure"] == keys[0][1])] if keys else table
    doc.heading("Accuracy vs budget")
    doc.image("curves.png", curves_figure(first), "held-out accuracy vs teacher budget, per strategy and |S| (95% "
              "intervals)" + (f"; regime {keys[0][0]}, {keys[0][1]} rule (every panel: All conditions)" if multi else ""))
    doc.heading("Setup")
    doc.text(_setup_text(manifest, cells, table))
    if cfg.get("teacher", {}).get("backend") == "simulated":
        doc.heading("Sensitivity: where the crossover moves with the simulator's assumptions")
        doc.text(paper)
        doc.table(_regime_table(cfg))
        doc.text("Per regime and exposure rule: new_question − answer_augmentation (points, 95% interval over seeds "
                 "and examples) at both ends of the budget range, which strategy leads where, and the crossover "
                 "ratio with its bootstrap interval (seeds and examples resampled).")
        doc.table(sensitivity_rows(sens))
    doc.heading("Does ptlab's study reproduce the paper's finding?")
    for (regime, exposure), g in adjusted.groupby(["regime", "exposure"], sort=False) if not adjusted.empty else []:
        says = verdict(g.assign(p=g["p_adj"]), alpha=ALPHA, adjusted=True)
        doc.text((f"Regime `{regime}`, {exposure} rule. " if multi else "") + says)
    for c in cross:
        doc.text((f"Regime `{c['regime']}`, {c['exposure']} rule, " if multi else "") + crossover_text(c))
    if cross:
        doc.heading("Where new questions overtake answer augmentation")
        doc.image("difference.png", difference_figure(cross), "new_question − answer_augmentation vs Q/|S|")
    if not comps.empty:
        doc.heading("Strategy comparisons at each budget")
        doc.text("Each pair of strategies at each (|S|, Q), on the same held-out examples: difference in accuracy "
                 "(points) with a 95% interval over seeds and examples, its paired t-test p, and that p Holm-adjusted "
                 "within its family (every comparison of one regime, exposure rule and |S|).")
        doc.table(comparison_table(comps))
    doc.heading("All conditions")
    doc.text("`rows`: training rows per cell (mean over seeds, seed rows included where configured); `questions` / "
             "`distinct Q–A pairs`: distinct questions and question–answer pairs among them; `steps`: SFT steps; "
             "`queries used` / `paid` / `cached`: teacher replies consumed, paid for and served by the reply cache "
             "when the data was generated (summed over seeds).")
    res = _fmt_table(table)
    doc.table(res)
    summary = {"findings": [asdict(f) for f in found], "checks": [asdict(c) for c in checks],
               "expected_crossover_gain": EXPECTED_CROSSOVER_GAIN, "crossovers": cross,
               "crossover_tests": ctests.to_dict(orient="records"), "comparisons": comps.to_dict(orient="records"),
               "end_tests": adjusted.to_dict(orient="records"), "sensitivity": sens.to_dict(orient="records"),
               "teacher": cfg.get("teacher", {}), "regimes": {n: cfg.get("regimes", {}).get(n, {})
                                                           for n in cfg.get("axes", {}).get("regime", [])},
               "paper_regime": paper, "verdict": _headline_verdict(found)}
    return doc, res, summary, table


def _headline_verdict(found: list[Finding]) -> str:
    """One line for the CLI: each crossover claim's verdict."""
    return "; ".join(f"{f.claim}: {f.verdict}" for f in found)


def write_report(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the report files under `out` (default <root>/report); return report.md's path."""
    root = Path(root)
    out = Path(out) if out else root / "report"
    doc, res, summary, table = build_document(root)
    doc.write(out)
    write_text(out / "table.md", _md_table(res) + "\n")
    write_text(out / "conditions.csv", table.to_csv(index=False))
    write_json(out / "crossover.json", _clean(summary))
    return out / "report.md"


def _clean(v):
    """JSON-ready: numpy scalars to Python, non-finite floats (e.g. an infinite bootstrap bound) to None."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.integer, np.bool_)):
        return v.item()
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    return v
