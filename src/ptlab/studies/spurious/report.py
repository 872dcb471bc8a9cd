"""`ptlab report <study-dir>` for the spurious study: report.md, report.html (self-contained), PNGs.

Sections: the results table (algorithms × conditions, 95% intervals), one
figure per task (in-distribution vs shortcut-breaking accuracy by algorithm
and rate, per artifact), the change from the lowest to the highest rate per
algorithm, and which algorithm wins where, with significance marks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ptlab.atomic import write_text
from ptlab.errors import PtlabError
from ptlab.report.document import Document
from ptlab.studies.grid.manifest import cell_ids, load_manifest_file
from ptlab.studies.grid.store import ResultStore
from ptlab.studies.spurious.analysis import condition_table, gain_over_base, rate_change, winners
from ptlab.studies.spurious.figures import LABEL, change_figure, task_figure


def load_study(root: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(manifest, cells, examples) of the cells this study's manifest lists."""
    root = Path(root)
    manifest_path = root / "study.json"
    if not manifest_path.is_file():
        raise PtlabError(f"{root}: not a study directory (no study.json)")
    manifest = load_manifest_file(manifest_path)
    if not (root / "results.sqlite").is_file():
        raise PtlabError(f"{root}: no results.sqlite yet — run the study first")
    store = ResultStore(root / "results.sqlite", create=False)
    results = store.results()
    cells = results[["cell_id", *store.axes]].drop_duplicates("cell_id")
    cells = cells[cells["cell_id"].isin(cell_ids(manifest))]
    if cells.empty:
        raise PtlabError(f"{root}: no finished cells to report")
    examples = store.examples()
    return manifest, cells, examples[examples["cell_id"].isin(cells["cell_id"])]


def _ci(r) -> str:
    return f"{r['accuracy']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]"


def results_table(table: pd.DataFrame) -> pd.DataFrame:
    """Rows: task / artifact / algorithm; columns: each split at each rate, as `acc [lo, hi]`."""
    t = table[table["split"].isin(["eval_id", "eval_break", "reliance"])].copy()
    t["cell"] = t.apply(_ci, axis=1)
    name = {"eval_id": "in-dist", "eval_break": "breaking", "reliance": "reliance"}
    t["column"] = t.apply(lambda r: f"{name[r['split']]} @{r['rate'] * 100:g}%", axis=1)
    wide = t.pivot_table(index=["task", "artifact", "algorithm"], columns="column", values="cell", aggfunc="first")
    order = [f"{name[s]} @{r * 100:g}%" for s in ("eval_id", "eval_break", "reliance") for r in sorted(t["rate"].unique())]
    wide = wide[[c for c in order if c in wide.columns]].fillna("–").reset_index()
    wide["artifact"] = wide["artifact"].map(lambda a: LABEL.get(a, a))
    return wide


def _points(r) -> str:
    """A difference in points with its interval and significance mark: `+4.2 [+1.0, +7.5] **`."""
    return f"{r['diff'] * 100:+.1f} [{r['lo'] * 100:+.1f}, {r['hi'] * 100:+.1f}] {r['mark']}"


def change_table(changes: pd.DataFrame) -> pd.DataFrame:
    if changes.empty:
        return changes
    c = changes.copy()
    c["change (points)"] = c.apply(_points, axis=1)
    c["p"] = c["p"].map(lambda p: f"{p:.3g}")
    c["artifact"] = c["artifact"].map(lambda a: LABEL.get(a, a))
    c["rates"] = c.apply(lambda r: f"{r['from_rate'] * 100:g}% → {r['to_rate'] * 100:g}%", axis=1)
    return c[["task", "artifact", "algorithm", "rates", "change (points)", "p"]]


def gain_table(gains: pd.DataFrame) -> pd.DataFrame:
    """Rows: task / artifact / rate; one column per algorithm: `trained − base` points with interval and mark."""
    g = gains.copy()
    g["cell"] = g.apply(lambda r: _points(r).rstrip(), axis=1)
    base = g.groupby(["task", "artifact", "rate"])["base"].first().rename("base accuracy")
    wide = g.pivot_table(index=["task", "artifact", "rate"], columns="algorithm", values="cell", aggfunc="first")
    wide = wide.join(base.map(lambda v: f"{v:.2f}")).reset_index()
    wide["artifact"] = wide["artifact"].map(lambda a: LABEL.get(a, a))
    wide["rate"] = wide["rate"].map(lambda r: f"{r * 100:g}%")
    return wide[["task", "artifact", "rate", "base accuracy", *sorted(set(g["algorithm"]))]]


def winners_table(w: pd.DataFrame) -> pd.DataFrame:
    if w.empty:
        return w
    c = w.copy()
    c["winner"] = c.apply(lambda r: f"{r['best']}{' ' + r['mark'] if r['beats_all'] else ' (n.s.)'}", axis=1)
    c["accuracy"] = c["accuracy"].map(lambda v: f"{v:.2f}")
    c["margin over runner-up"] = c.apply(lambda r: f"{r['margin'] * 100:+.1f} vs {r['runner_up']}", axis=1)
    c["p (vs every other)"] = c["p_vs_all"].map(lambda p: f"{p:.3g}")
    c["artifact"] = c["artifact"].map(lambda a: LABEL.get(a, a))
    c["rate"] = c["rate"].map(lambda r: f"{r * 100:g}%")
    return c[["task", "artifact", "rate", "winner", "accuracy", "margin over runner-up", "p (vs every other)"]]


def _setup_text(manifest: dict, cells: pd.DataFrame) -> str:
    cfg = manifest.get("config", {})
    d, t = cfg.get("data", {}), cfg.get("train", {})
    seeds = sorted(cells["seed"].unique())
    return (f"Model `{cfg.get('model')}`; {cells['cell_id'].nunique()} cells "
            f"({cells['task'].nunique()} tasks × {cells['artifact'].nunique()} artifacts × {cells['rate'].nunique()} rates × "
            f"{cells['algorithm'].nunique()} algorithms × {len(seeds)} seeds). Each cell: {d.get('n_train')} training "
            f"examples, batch {t.get('batch_size')}, {t.get('max_steps') or str(t.get('epochs')) + ' epochs'}"
            f"{' steps' if t.get('max_steps') else ''}, lr {t.get('lr')}; evaluation on {d.get('n_eval')} in-distribution and "
            f"{d.get('n_eval')} shortcut-breaking examples (the same examples for every algorithm and seed; greedy decoding). "
            "Intervals are 95% percentile bootstraps over examples with seeds pooled; tests are paired sign-flip "
            "permutation tests on per-example outcomes (`*` p<0.05, `**` p<0.01, `***` p<0.001; not corrected for "
            "multiple comparisons). **Reliance** = accuracy where the shortcut agrees with the truth − where it conflicts.")


def _headline(changes: pd.DataFrame) -> str:
    """One sentence: where the shortcut-breaking accuracy drops significantly as the spurious rate rises."""
    if changes.empty:
        return "Only one rate was run, so there is no change across rates to report."
    sig = changes[(changes["p"] < 0.05) & (changes["diff"] < 0)].sort_values("diff")
    if sig.empty:
        return "**No significant drop** in shortcut-breaking accuracy from the lowest to the highest rate (p < 0.05)."
    items = "; ".join(f"{r.task} / {LABEL.get(r.artifact, r.artifact)} / {r.algorithm}: {r.diff * 100:+.1f} points "
                      f"(p = {r.p:.2g})" for r in sig.itertuples())
    return f"**Significant drops** in shortcut-breaking accuracy as the spurious rate rises: {items}."


def build_document(root: Path) -> tuple[Document, pd.DataFrame, pd.DataFrame]:
    """(the report, its results table, the condition table it was made from)."""
    manifest, cells, examples = load_study(root)
    table = condition_table(cells, examples)
    changes = rate_change(cells, examples)
    wins = winners(cells, examples)
    doc = Document("Robustness to spurious correlations: SFT vs DPO vs KTO")
    doc.text(_setup_text(manifest, cells))
    doc.text(_headline(changes))
    doc.heading("Results")
    res = results_table(table)
    doc.table(res)
    gains = gain_over_base(cells, examples)
    if not gains.empty:
        doc.heading("Gain over the base model (in-distribution)")
        doc.text("Post-trained accuracy − the untrained base's on the same in-distribution examples, in points "
                 "(95% interval, paired test). Positive: post-training taught the task.")
        doc.table(gain_table(gains))
    if not changes.empty:
        doc.heading("Change from the lowest to the highest spurious rate (shortcut-breaking split)")
        doc.text("Negative: the algorithm's model leans more on the shortcut when more of its training data carries it.")
        doc.table(change_table(changes))
        doc.image("change.png", change_figure(changes), "change in shortcut-breaking accuracy per algorithm")
    if not wins.empty:
        doc.heading("Which algorithm wins where (shortcut-breaking accuracy)")
        doc.text("The best algorithm per condition; a mark means it beats every other algorithm in a paired test, "
                 "(n.s.) that at least one difference is not significant.")
        doc.table(winners_table(wins))
    doc.heading("Per task")
    for task in sorted(cells["task"].unique()):
        doc.image(f"task-{task}.png", task_figure(table, task), f"{task}: in-distribution vs shortcut-breaking accuracy")
    pairs = table[table["split"].isin(["pairs_rank", "pairs_reward"])]
    if not pairs.empty:
        doc.heading("Ranking accuracy on held-out pairs")
        doc.text("`rank`: the model's log-likelihood prefers the chosen response; `reward`: the implicit reward "
                 "log π/π_base does (TRL's rewards/accuracies).")
        p = pairs.copy()
        p["value"] = p.apply(_ci, axis=1)
        p["column"] = p.apply(lambda r: f"{r['split'].removeprefix('pairs_')} @{r['rate'] * 100:g}%", axis=1)
        doc.table(p.pivot_table(index=["task", "artifact", "algorithm"], columns="column", values="value",
                                aggfunc="first").reset_index())
    return doc, res, table


def write_report(root: str | Path, out: str | Path | None = None) -> Path:
    """Write report.md, report.html, table.md, conditions.csv and the PNGs; return report.md's path."""
    root = Path(root)
    out = Path(out) if out else root / "report"
    doc, res, table = build_document(root)
    doc.write(out)
    from ptlab.report.document import _md_table

    write_text(out / "table.md", _md_table(res) + "\n")
    write_text(out / "conditions.csv", table.to_csv(index=False))
    return out / "report.md"
