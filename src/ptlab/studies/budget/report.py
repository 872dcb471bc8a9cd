"""The budget study's report: report.md, report.html (self-contained), PNGs, table.md, conditions.csv, crossover.json.

Sections: setup; the headline (does the study reproduce "answer augmentation
best at low Q/|S|, new questions best at high Q/|S|"?); accuracy-vs-budget
curves per strategy, one panel per seed-set size, with 95% intervals; the
new_question − answer_augmentation difference along Q/|S| with the crossover;
the full table with what each condition cost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ptlab.atomic import write_json, write_text
from ptlab.report.document import Document, _md_table
from ptlab.report.figures import plt, png
from ptlab.studies.budget.analysis import (
    CHALLENGER,
    INCUMBENT,
    STRATEGY_ORDER,
    condition_table,
    crossover_text,
    crossovers,
    end_tests,
    load,
    verdict,
)

COLORS = {"answer_augmentation": "#4477aa", "question_rephrase": "#228833", "new_question": "#ee6677"}


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
                        color=COLORS[strategy], marker="o", capsize=3, label=strategy)
        seeds_only = t[t["strategy"] == "seeds_only"]
        if not seeds_only.empty:
            r = seeds_only.iloc[0]
            ax.axhline(r["accuracy"], color="grey", ls="--", lw=1, label=f"seeds only ({r['accuracy']:.2f})")
        if not base.empty:
            ax.axhline(base.iloc[0]["accuracy"], color="black", ls=":", lw=1,
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
    """new_question − answer_augmentation along Q/|S|, one line per |S|, crossovers marked."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for c, color in zip(cross, ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377"]):
        ax.plot(c["ratios"], np.array(c["diff"]) * 100, marker="o", color=color, label=f"|S| = {c['seed_size']}")
        if c["status"] == "crossover":
            ax.axvline(c["ratio"], color=color, ls="--", lw=1)
    ax.axhline(0, color="grey", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("budget ratio Q/|S|")
    ax.set_ylabel(f"{CHALLENGER} − {INCUMBENT}\n(accuracy points)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png(fig)


def _fmt_table(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    order = {s: i for i, s in enumerate(("base", "seeds_only", *STRATEGY_ORDER))}
    t["_o"] = t["strategy"].map(order)
    t = t.sort_values(["seed_size", "budget", "_o"])
    return pd.DataFrame({
        "|S|": t["seed_size"].map(lambda v: v or "–"), "Q": t["budget"], "Q/|S|": t["ratio"].map(lambda v: f"{v:g}"),
        "strategy": t["strategy"], "accuracy [95% CI]": t.apply(lambda r: f"{r['accuracy']:.3f} [{r['lo']:.3f}, "
                                                                          f"{r['hi']:.3f}]", axis=1),
        "seeds": t["seeds"], "rows": t["rows"].map(lambda v: f"{v:.0f}"),
        "questions": t["unique_questions"].map(lambda v: f"{v:.0f}"), "steps": t["train_steps"].map(lambda v: f"{v:.0f}"),
        "queries used": t["queries_used"].map(lambda v: f"{v:.0f}"), "paid": t["paid"].map(lambda v: f"{v:.0f}"),
        "cached": t["cached"].map(lambda v: f"{v:.0f}"),
    })


def _setup_text(manifest: dict, cells: pd.DataFrame, table: pd.DataFrame) -> str:
    cfg = manifest.get("config", {})
    t, teacher, a = cfg.get("train", {}), cfg.get("teacher", {}), cfg.get("axes", {})
    budget = f"{t.get('max_steps')} steps" if t.get("max_steps") else f"{t.get('epochs'):g} epochs over its rows"
    sim = (" The teacher is **simulated** (`ptlab.synth` simulated backend: it answers, rewords and invents questions "
           f"through the task generator, wrong on {teacher.get('error_rate')} of answers, diversity "
           f"{teacher.get('diversity')}); it is not a language model, so this tests ptlab's machinery and the "
           "shape of the trade-off under that simulation, not the paper's LLM result."
           if teacher.get("backend") == "simulated" else f" Teacher: `{teacher.get('backend')}:{teacher.get('model')}`.")
    n_eval = int(table["n_eval"].max()) if not table.empty else 0
    return (f"Task `{cfg.get('task')}`, student `{cfg.get('model')}` (SFT with ptlab's engine, {budget}, batch "
            f"{t.get('batch_size')}, lr {t.get('lr')}, {t.get('scheduler')}). Grid: |S| ∈ {a.get('seed_size')}, "
            f"Q ∈ {a.get('budget')}, strategies {a.get('strategy')}, seeds {a.get('seed')} ({len(cells)} cells "
            f"stored). Every cell is evaluated greedily on the same {n_eval} held-out `eval_id` examples. Intervals "
            "are 95% percentile bootstraps over examples with seeds pooled; differences use paired sign-flip "
            "permutation tests on per-example outcomes. Strategies go round-robin over the seeds in order, so a "
            "budget too small for one pass reaches only the first seeds (cells of different |S| can then coincide)."
            f"{sim}")


def build_document(root: Path) -> tuple[Document, pd.DataFrame, dict, pd.DataFrame]:
    """(the report, its results table, the crossover summary, the condition table it was made from)."""
    manifest, cells, outcomes = load(root)
    table = condition_table(cells, outcomes)
    cross = crossovers(cells, outcomes, n_boot=1000)
    tests = end_tests(cells, outcomes)
    doc = Document("Synthetic data under a budget: answer augmentation vs question rephrase vs new question")
    doc.text(_setup_text(manifest, cells, table))
    doc.heading("Does ptlab's study reproduce the paper's finding?")
    doc.text(verdict(tests))
    for c in cross:
        doc.text(crossover_text(c))
    doc.heading("Accuracy vs budget")
    doc.image("curves.png", curves_figure(table), "held-out accuracy vs teacher budget, per strategy and |S|")
    if cross:
        doc.heading("Where new questions overtake answer augmentation")
        doc.image("difference.png", difference_figure(cross), "new_question − answer_augmentation vs Q/|S|")
    if not tests.empty:
        t = tests.copy()
        t["NQ − AA (points)"] = t.apply(lambda r: f"{r['diff'] * 100:+.1f} [{r['lo'] * 100:+.1f}, {r['hi'] * 100:+.1f}]",
                                        axis=1)
        t["p"] = t["p"].map(lambda p: f"{p:.3g}")
        doc.table(t[["seed_size", "end", "budget", "ratio", "NQ − AA (points)", "p"]].rename(
            columns={"seed_size": "|S|", "budget": "Q", "ratio": "Q/|S|"}))
    doc.heading("All conditions")
    doc.text("`rows`: training rows per cell (mean over seeds); `questions`: distinct questions among them; `steps`: "
             "SFT steps; `queries used` / `paid` / `cached`: teacher replies consumed, paid for and served by the "
             "reply cache when the data was generated (summed over seeds; the simulated teacher is never cached).")
    res = _fmt_table(table)
    doc.table(res)
    summary = {"crossovers": cross, "end_tests": tests.to_dict(orient="records"), "verdict": verdict(tests)}
    return doc, res, summary, table


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
