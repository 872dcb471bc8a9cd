"""`ptlab report <study-dir>` for the spurious study: report.md, report.html (self-contained), PNGs.

Opens with what the study can conclude: the Findings (the paper's three claims, each supported / contradicted /
inconclusive with its effect, interval, raw and Holm-adjusted p), the design checks (controls, built data,
tuning, exposure, convergence, seeds, power) and one headline figure (reliance by arm, low → high rate). Then the
details: the claims' tests, how the arms were compared (validation sweep, exposure, learning curves, per-pair
diagnostics), the data checks, reliance, accuracy, gains, winners, per-task figures and breaking pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ptlab.atomic import write_text
from ptlab.errors import PtlabError
from ptlab.report.document import Document
from ptlab.studies.grid.manifest import cell_ids, load_manifest_file
from ptlab.studies.grid.store import ResultStore
from ptlab.studies.spurious.analysis import SPLITS, condition_table, gain_over_base, winners
from ptlab.studies.spurious.config import BASE
from ptlab.studies.spurious.design import BASE_FILE, check_table, eval_size_table
from ptlab.studies.spurious.figures import LABEL, reliance_figure, task_figure
from ptlab.studies.spurious.reliance import claims, controls_verdict, reliance_table
from ptlab.tasks.spurious import FEATURE_AMBIGUITY


def load_study(root: Path, with_results: bool = False) -> tuple:
    """(manifest, cells, examples) of the cells this study's manifest lists (+ their metric rows)."""
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
    out = (manifest, cells, examples[examples["cell_id"].isin(cells["cell_id"])])
    return (*out, results[results["cell_id"].isin(cells["cell_id"])]) if with_results else out


def _ci(r) -> str:
    return f"{r['accuracy']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]"


def results_table(table: pd.DataFrame) -> pd.DataFrame:
    """Rows: task / artifact / algorithm; columns: each split at each rate, as `acc [lo, hi]`."""
    t = table[table["split"].isin(list(SPLITS))].copy()
    t["cell"] = t.apply(_ci, axis=1)
    name = SPLITS
    t["column"] = t.apply(lambda r: f"{name[r['split']]} @{r['rate'] * 100:g}%", axis=1)
    wide = t.pivot_table(index=["task", "artifact", "algorithm"], columns="column", values="cell", aggfunc="first")
    order = [f"{name[s]} @{r * 100:g}%" for s in SPLITS for r in sorted(t["rate"].unique())]
    wide = wide[[c for c in order if c in wide.columns]].fillna("–").reset_index()
    wide["artifact"] = wide["artifact"].map(lambda a: LABEL.get(a, a))
    return wide


def _points(r) -> str:
    """A difference in points with its interval and significance mark: `+4.2 [+1.0, +7.5] **`."""
    return f"{r['diff'] * 100:+.1f} [{r['lo'] * 100:+.1f}, {r['hi'] * 100:+.1f}] {r['mark']}"


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
            f"({cells['task'].nunique()} tasks × {cells['artifact'].nunique()} artifacts × rates "
            f"{', '.join(f'{r:g}' for r in sorted(cells['rate'].unique()))} × {cells['algorithm'].nunique()} algorithms × "
            f"{len(seeds)} seeds; rates 0 and 1 of Feature Ambiguity are the controls). Each cell: {d.get('n_train')} "
            f"training examples, batch {t.get('batch_size')} prompts, "
            f"{str(t.get('max_steps')) + ' steps' if t.get('exposure') == 'steps' else str(t.get('epochs')) + ' epochs'}"
            f" (exposure: {t.get('exposure')}); learning rates and β "
            f"{'chosen on the validation split (below)' if cfg.get('tuning', {}).get('enabled') else 'fixed by the config'}.\n\n"
            "**Rate.** Feature Ambiguity: every training example whose behaviour the cue can be about carries a cue; "
            "at rate r a share r carries the cue of its own behaviour and the rest a cue drawn independently of it, so "
            "the frequency of every cue and every behaviour is the same at every rate (checked below) and only their "
            "agreement moves. Distributional Narrowness: a share r of the training data lies inside the slice, the "
            "rest outside it.\n\n"
            f"**Evaluation** ({d.get('n_eval')} items a split, the same at every rate, for every algorithm and seed; "
            "greedy decoding; none of them in any training set or in the base's pretraining text): Feature Ambiguity "
            "on counterfactual twins — each item with the cue agreeing (*holds*), conflicting (*breaks*) and absent "
            "(*no cue*), nothing else different; Distributional Narrowness on items inside (*holds*) and outside "
            "(*breaks*) the slice. docqa is scored on the decision (the right fact chosen: the gold value and no other "
            "value of the document), not on the answer's format. **Reliance** = (holds − breaks) of the model − the same "
            "gap of the untrained base on the same items: zero for a model that post-training did not teach to follow "
            "the shortcut. Intervals are 95% and include training-seed and item variance (crossed random effects, "
            "Satterthwaite t; `ptlab.evaluate.hierarchical`); tests are paired on items and seeds; each table's tests "
            "are one family, Holm-corrected (`*` p<0.05, `**` p<0.01, `***` p<0.001, adjusted).")


def _pts(v: float, lo: float, hi: float, mark: str = "") -> str:
    return f"{v * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}] {mark}".rstrip()


def reliance_wide(rel: pd.DataFrame) -> pd.DataFrame:
    """Rows: task / artifact / algorithm; one column per rate: reliance vs the base (points, 95% CI, mark)."""
    r = rel.dropna(subset=["reliance"]).copy() if "reliance" in rel else rel.iloc[0:0]
    if r.empty:
        return r
    r["cell"] = r.apply(lambda x: _pts(x["reliance"], x["lo"], x["hi"], x["mark"]), axis=1)
    r["column"] = r["rate"].map(lambda v: f"@{v * 100:g}%" + (" (neg. control)" if v == 0 else " (pos. control)" if v == 1 else ""))
    wide = r.pivot_table(index=["task", "artifact", "algorithm"], columns="column", values="cell", aggfunc="first")
    order = [c for _, c in sorted({(v, r.loc[r["rate"] == v, "column"].iloc[0]) for v in r["rate"]})]
    wide = wide[order].fillna("–").reset_index()
    wide["artifact"] = wide["artifact"].map(lambda a: LABEL.get(a, a))
    return wide


def format_table(cells: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """docqa per condition: fact selection (`correct`) and exact match (`value`) where the shortcut holds."""
    ex = examples[(examples["split"] == "eval_id") & examples["value"].notna()]
    ex = ex.merge(cells[cells["task"] == "docqa"], on="cell_id")
    if ex.empty:
        return pd.DataFrame()
    g = ex.groupby(["artifact", "rate", "algorithm"]).agg(fact_selection=("correct", "mean"),
                                                         exact_match=("value", "mean")).reset_index()
    g["artifact"] = g["artifact"].map(lambda a: LABEL.get(a, a))
    g["rate"] = g["rate"].map(lambda r: f"{r * 100:g}%")
    return g.round(3)


def _base_table(root: Path) -> pd.DataFrame | None:
    path = root / BASE_FILE
    if not path.is_file():
        return None
    card = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for task, by_feature in card.get("feature_twins", {}).items():
        for feature, r in by_feature.items():
            rows.append({"task": task, "feature": feature, "cue agrees": r.get("agree"), "cue conflicts": r.get("conflict"),
                         "no cue": r.get("absent", "–"), "new to the base": {True: "yes", False: "no", None: "–"}[r.get("novel")]})
    return pd.DataFrame(rows)


def _captioned(doc: Document, table: pd.DataFrame | None, caption: str, heading: str | None = None) -> None:
    """A table with its caption (and heading), or nothing when there is nothing to show."""
    if table is None or table.empty:
        return
    if heading:
        doc.heading(heading)
    doc.text(caption)
    doc.table(table)


def build_document(root: Path) -> tuple[Document, pd.DataFrame, pd.DataFrame]:
    """(the report, its results table, the condition table it was made from).

    Opens with the Findings (the paper's claims: verdict, effect, interval, raw and Holm-adjusted p), the design
    checks (pass / fail), and the headline figure (reliance by arm from the low to the high rate); then the details.
    """
    from ptlab.studies.spurious import opening, protocol
    from ptlab.studies.spurious.figures import curves_figure

    root = Path(root)
    manifest, cells, examples, results = load_study(root, with_results=True)
    table = condition_table(cells, examples)
    rel = reliance_table(cells, examples)
    controls = controls_verdict(rel)
    study_rates = sorted(r for r in cells["rate"].unique() if 0 < r < 1)
    claim_rows, claim_tests = claims(cells, examples, study_rates[0], study_rates[-1]) if len(study_rates) >= 2 \
        else ([], pd.DataFrame())
    sweep, picked, edges = protocol.sweep_report(root)
    convergence = protocol.convergence_table(results, cells)
    seeds = int(cells[cells["algorithm"] != BASE]["seed"].nunique()) if (cells["algorithm"] != BASE).any() else 0
    tuning = manifest.get("config", {}).get("tuning", {})
    doc = Document("Robustness to spurious correlations: SFT vs DPO vs KTO")
    doc.findings(opening.findings(claim_rows), note=(
        f"Each claim's tests form one family, Holm-corrected (α = 0.05); intervals include training-seed and item "
        f"variance ({seeds} seed{'s' if seeds != 1 else ''}). A claim whose tests could not have detected a "
        f"{opening.EXPECTED * 100:.0f}-point effect at 80% power is inconclusive, never 'no difference'."))
    doc.checks([*opening.control_checks(controls, (cells["artifact"] == FEATURE_AMBIGUITY).any()),
                *opening.data_checks(check_table(results, cells), results),
                *opening.protocol_checks(bool(tuning.get("enabled")) if tuning else None, len(picked),
                                         edges, protocol.exposure_equal(results, cells),
                                         convergence),
                *opening.power_checks(seeds, claim_tests)])
    if not rel.empty and "reliance" in rel:
        doc.image("reliance.png", reliance_figure(rel), "Headline: reliance (holds − breaks, vs the base) by arm "
                  "and training rate, 95% intervals over seeds and items; rates 0 and 1 are the controls")
    doc.heading("Design")
    doc.text(_setup_text(manifest, cells))
    _captioned(doc, claim_tests_table(claim_tests),
               "Every test behind the findings: the effect (points), its 95% interval over seeds and items, the "
               "per-seed effects, raw p and Holm-adjusted p within the claim's family, and the minimum detectable "
               "effect at 80% power.", heading="The claims' tests")
    doc.heading("How the arms were compared")
    _captioned(doc, sweep, "The validation sweep: every grid point of every arm, trained at the tuning condition and "
               "scored by greedy accuracy on the validation split (✓: chosen; ties go to the smaller learning rate)."
               if not sweep.empty else "", heading=None)
    if sweep.empty:
        doc.text("Hyper-parameters were fixed by the config (`tuning.enabled: false`), not tuned.")
    _captioned(doc, protocol.exposure_table(results, cells),
               f"Exposure (`train.exposure: {manifest.get('config', {}).get('train', {}).get('exposure', '?')}`): "
               "the prompts each arm trains on and how often it sees each; KTO's two rows a prompt are counted as "
               "one prompt. A pipeline (sft+dpo) sees its prompts once per stage.")
    _captioned(doc, convergence, "Convergence: a run is 'still improving' when its mean training loss fell by more "
               "than 5% from the third to the last quarter of its steps.")
    points = protocol.curves(results, cells)
    if not points.empty:
        doc.image("curves.png", curves_figure(points), "Learning curves: the objective's loss on the validation "
                  "split (solid) and the training loss (dashed) at evenly spaced points, averaged over cells")
    _captioned(doc, protocol.diagnostics_table(results, cells),
               "Per-pair diagnostics of preference training, on the training pairs (vs the model training started "
               "from): ranking accuracy of the reference and the trained policy, the idealised ranking accuracy a "
               "perfectly optimised DPO model would reach from the same reference (Chen et al., 2024; α = 0.9), the "
               "mean change of the chosen and rejected log-probabilities (likelihood displacement), the share of "
               "pairs whose chosen log-probability went down, and its rank correlation with the pair's ln-CHES "
               "similarity (Razin et al., 2024). Per pair: `pair_diagnostics.jsonl` in each training directory.",
               heading="Preference training, pair by pair")
    doc.heading("Design checks, in detail")
    _captioned(doc, check_table(results, cells),
               "Measured on the built training data of every post-training cell: across rates only the agreement "
               "between cue and behaviour may move (the cue-value and behaviour shares must stay within sampling "
               "error: `ok`); for Distributional Narrowness the share inside the slice must equal the rate.")
    _captioned(doc, eval_size_table(results, cells),
               "Evaluation items after removing any whose prompt (any twin's) is in the base's pretraining text "
               "(training data never holds an evaluation prompt): `n` effective of `requested`.")
    _captioned(doc, _base_table(root),
               "The base on twins before any post-training (from its model card): every cue was in its pretraining "
               "text, independent of the behaviour; `new to the base` = a significant accuracy gap with vs without it.")
    _captioned(doc, reliance_wide(rel),
               "(holds − breaks) of the model − the same of the untrained base on the same items, in points, 95% "
               "interval over seeds and items; marks from Holm-adjusted p within the reliance family (the controls "
               "form their own).", heading="Shortcut reliance vs the base")
    doc.heading("Accuracy")
    res = results_table(table)
    doc.table(res)
    _captioned(doc, format_table(cells, examples),
               "docqa beside its decision score: exact match of the answer span (the format), where the shortcut "
               "holds. The gap between the two is what a format habit costs, not a wrong fact.")
    gains = gain_over_base(cells, examples)
    _captioned(doc, gain_table(gains) if not gains.empty else None,
               "Post-trained accuracy − the untrained base's on the same items, in points (95% interval over seeds "
               "and items; marks from Holm-adjusted p over the table). Positive: post-training taught the task.",
               heading="Gain over the base model (shortcut holds)")
    _captioned(doc, winners_table(winners(cells, examples)),
               "The best arm per condition; a mark means it beats every other arm (Holm-adjusted over the table), "
               "(n.s.) that at least one difference is not significant.", heading="Which arm wins where (shortcut breaks)")
    doc.heading("Per task")
    for task in sorted(cells["task"].unique()):
        doc.image(f"task-{task}.png", task_figure(table, task), f"{task}: accuracy where the shortcut holds vs breaks")
    pairs = table[table["split"].isin(["pairs_rank", "pairs_reward"])]
    if not pairs.empty:
        doc.heading("Likelihood preference on breaking pairs")
        doc.text("Pairs where the cue conflicts: the correct response vs the shortcut's (for math, the same solution "
                 "with the cue's operation in the last step). `rank`: the model's log-likelihood prefers the correct "
                 "one; `reward`: the implicit reward log π/π_ref does (TRL's rewards/accuracies; π_ref is the base, or "
                 "a pipeline's SFT model). No format floor: it moves before greedy accuracy does.")
        p = pairs.copy()
        p["value"] = p.apply(_ci, axis=1)
        p["column"] = p.apply(lambda r: f"{r['split'].removeprefix('pairs_')} @{r['rate'] * 100:g}%", axis=1)
        order = [f"{view} @{r * 100:g}%" for view in ("rank", "reward") for r in sorted(p["rate"].unique())]
        wide = p.pivot_table(index=["task", "artifact", "algorithm"], columns="column", values="value", aggfunc="first")
        doc.table(wide[[c for c in order if c in wide.columns]].fillna("–").reset_index())
    return doc, res, table


def claim_tests_table(tests: pd.DataFrame) -> pd.DataFrame | None:
    if tests.empty:
        return None
    return pd.DataFrame({
        "claim": tests["claim"], "test": tests["test"],
        "effect (points)": [f"{v * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}]"
                            for v, lo, hi in zip(tests["value"], tests["lo"], tests["hi"])],
        "per seed": tests["per_seed"], "p": tests["p"].map(lambda p: f"{p:.2g}"),
        "p (Holm)": tests["p_adj"].map(lambda p: f"{p:.2g}"), "MDE": tests["mde"].map(lambda m: f"{m * 100:.1f}"),
        "verdict": tests["verdict"]})


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
