"""How the arms were trained, as the report shows it: the validation sweep and its choice, each arm's exposure,
its learning curves and convergence, and the per-pair diagnostics of its preference training.

Pure functions over the results store's long metric rows (`results`: cell_id, metric, value, axes) and the
study's cells; the sweep is read from `<output_dir>/tuning/`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ptlab.studies.spurious.config import BASE

ARM_ORDER = ("base", "sft", "dpo", "kto", "sft+dpo", "sft+kto")


def wide_metrics(results: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its axes and every metric it stored."""
    if results.empty:
        return cells.iloc[0:0]
    wide = results.pivot_table(index="cell_id", columns="metric", values="value", aggfunc="first")
    return cells.set_index("cell_id").join(wide).reset_index()


def _arm_key(alg: str) -> int:
    return ARM_ORDER.index(alg) if alg in ARM_ORDER else len(ARM_ORDER)


def sweep_report(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(every point of the sweep with its validation accuracy, the chosen point per task and arm, the choices at an
    end of a learning-rate grid of three or more: the best value may lie outside the grid)."""
    from ptlab.studies.spurious.tuning import SWEEP_DIR, selection, sweep_table

    table = sweep_table(Path(root) / SWEEP_DIR)
    if table.empty:
        return table, table, []
    chosen = selection(root)
    table = table.assign(chosen=[chosen.get(r.task, {}).get(r.arm, {}).get("point") == r.point
                                 for r in table.itertuples()])
    edges = []
    for (task, arm), g in table.groupby(["task", "arm"], sort=True):
        lrs, picked_lr = sorted(g["lr"].unique()), g.loc[g["chosen"], "lr"]
        if len(lrs) >= 3 and len(picked_lr) and picked_lr.iloc[0] in (lrs[0], lrs[-1]):
            edges.append(f"{task}/{arm} (lr {picked_lr.iloc[0]:g})")
    shown = table.assign(validation=table["validation"].round(3), final_loss=table["final_loss"].round(3),
                         chosen=table["chosen"].map({True: "✓", False: ""}),
                         still_improving=table["still_improving"].map({True: "yes", False: ""}))
    shown = shown.drop(columns=["lr", "params"]).sort_values(["task", "arm", "point"], key=lambda s: s.map(
        _arm_key) if s.name == "arm" else s)
    picked = table[table["chosen"]][["task", "arm", "point", "validation"]].round(3)
    return shown, picked, edges


def exposure_table(results: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per arm: prompts, rows, rows a step, optimizer steps (last stage), training stages, and passes over each
    prompt (all stages together) — what `train.exposure` made equal, and what a pipeline adds."""
    w = wide_metrics(results, cells)
    w = w[w["algorithm"] != BASE] if "algorithm" in w else w
    if w.empty or "exposure/steps" not in w:
        return pd.DataFrame()
    rows = []
    for alg, g in sorted(w.groupby("algorithm"), key=lambda kv: _arm_key(kv[0])):
        def span(col, fmt="{:g}"):
            v = sorted(set(g[col].dropna()))
            return fmt.format(v[0]) if len(v) == 1 else f"{fmt.format(v[0])}–{fmt.format(v[-1])}" if v else ""
        rows.append({"arm": alg, "prompts": span("exposure/prompts"), "rows": span("exposure/rows"),
                     "rows a step": span("exposure/rows_per_step"), "steps": span("exposure/steps"),
                     "stages": span("exposure/stages"), "passes over each prompt": span("exposure/prompt_passes",
                                                                                          "{:.2f}")})
    return pd.DataFrame(rows)


def exposure_equal(results: pd.DataFrame, cells: pd.DataFrame) -> tuple[bool | None, str]:
    """Whether every single-stage arm saw each prompt equally often (pipelines see it once per stage)."""
    w = wide_metrics(results, cells)
    if "exposure/prompt_passes" not in w:
        return None, "no exposure recorded"
    single = w[(w["algorithm"] != BASE) & (w["exposure/stages"] == 1)]
    passes = single.groupby("algorithm")["exposure/prompt_passes"].mean()
    ok = bool(passes.empty or np.allclose(passes, passes.iloc[0], rtol=0.02))
    detail = ", ".join(f"{a} {v:.2f}" for a, v in passes.items()) + " passes over each prompt"
    multi = w[w["exposure/stages"] > 1]
    if not multi.empty:
        detail += f"; pipelines {multi['exposure/prompt_passes'].mean():.2f} (one pass set per stage, by design)"
    return ok, detail


def convergence_table(results: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per task and arm: first and final training loss, how many runs were still improving at the end."""
    w = wide_metrics(results, cells)
    if "train/still_improving" not in w:
        return pd.DataFrame()
    w = w[w["algorithm"] != BASE]
    rows = []
    for (task, alg), g in w.groupby(["task", "algorithm"], sort=True):
        rows.append({"task": task, "arm": alg, "lr": g["train/lr"].iloc[0] if "train/lr" in g else np.nan,
                     "beta": g["train/beta"].iloc[0] if "train/beta" in g else np.nan,
                     "first loss": round(float(g["train/first_loss"].mean()), 3),
                     "final loss": round(float(g["train/loss"].mean()), 3),
                     "still improving": f"{int(g['train/still_improving'].sum())} of {len(g)}"})
    out = pd.DataFrame(rows)
    return out.sort_values(["task", "arm"], key=lambda s: s.map(_arm_key) if s.name == "arm" else s)


def curves(results: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Learning-curve points averaged over the cells of each (task, arm): k, train loss, validation loss."""
    w = wide_metrics(results, cells)
    cols = [c for c in w.columns if isinstance(c, str) and c.startswith("curve/")]
    if not cols:
        return pd.DataFrame()
    long = w[["task", "algorithm", *cols]].melt(id_vars=["task", "algorithm"]).dropna()
    parts = long["variable"].str.split("/", expand=True)
    long = long.assign(k=parts[1].astype(int), what=parts[2])
    return long.pivot_table(index=["task", "algorithm", "k"], columns="what", values="value",
                            aggfunc="mean").reset_index()


DIAG_STATS = {"ranking_accuracy_ref": "rank acc. (ref)", "ranking_accuracy": "rank acc.",
              "idealised_ranking_accuracy": "idealised", "mean_d_chosen": "Δ log π(chosen)",
              "mean_d_rejected": "Δ log π(rejected)", "share_chosen_down": "chosen ↓ share",
              "spearman_ln_ches_d_chosen": "ρ(ln-CHES, Δchosen)"}
DIAG_GROUPS = {"all": "all pairs", "agree": "cue agrees", "conflict": "cue conflicts",
               "chosen_longer": "chosen longer", "chosen_not_longer": "chosen not longer",
               "edit_small": "edit distance < median", "edit_large": "edit distance ≥ median"}


def diagnostics_table(results: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per preference arm and pair group: the training pairs' diagnostics, averaged over the arm's cells."""
    w = wide_metrics(results, cells)
    if not any(isinstance(c, str) and c.startswith("diag/") for c in w.columns):
        return pd.DataFrame()
    rows = []
    for (task, alg), g in w.groupby(["task", "algorithm"], sort=True):
        for group, label in DIAG_GROUPS.items():
            cols = {f"diag/{group}/{s}": name for s, name in DIAG_STATS.items()}
            if f"diag/{group}/n" not in g or g[f"diag/{group}/n"].isna().all():
                continue
            row = {"task": task, "arm": alg, "pairs": label, "n": int(g[f"diag/{group}/n"].sum())}
            row.update({name: round(float(g[c].mean()), 3) for c, name in cols.items() if c in g})
            rows.append(row)
    return pd.DataFrame(rows)
