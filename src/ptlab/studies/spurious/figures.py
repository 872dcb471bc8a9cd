"""The spurious study's figures, as PNG bytes."""

from __future__ import annotations

import pandas as pd

from ptlab.report.figures import colour, plt, png

LABEL = {"feature_ambiguity": "Feature Ambiguity", "distributional_narrowness": "Distributional Narrowness"}


def task_figure(table: pd.DataFrame, task: str) -> bytes:
    """In-distribution (solid) vs shortcut-breaking (dashed) accuracy by rate, one panel per artifact."""
    t = table[(table["task"] == task) & table["split"].isin(["eval_id", "eval_break"])]
    artifacts = sorted(t["artifact"].unique())
    fig, axes = plt.subplots(1, len(artifacts), figsize=(5.2 * len(artifacts), 3.8), squeeze=False, sharey=True)
    for ax, artifact in zip(axes[0], artifacts):
        a = t[t["artifact"] == artifact]
        for (alg, split), g in a.groupby(["algorithm", "split"]):
            g = g.sort_values("rate")
            err = [g["accuracy"] - g["lo"], g["hi"] - g["accuracy"]]
            ax.errorbar(g["rate"] * 100, g["accuracy"], yerr=err, color=colour(alg), capsize=3, marker="o",
                        linestyle="-" if split == "eval_id" else "--",
                        label=f"{alg} {'shortcut holds' if split == 'eval_id' else 'breaks'}")
        feature = a["feature"].iloc[0] if len(a) else ""
        ax.set_title(f"{task}: {LABEL.get(artifact, artifact)}\n({feature})", fontsize=10)
        ax.set_xlabel("spurious rate in training data (%)")
        ax.set_xticks(sorted(a["rate"].unique() * 100))
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (95% CI)\nsolid: in-distribution, dashed: shortcut-breaking", fontsize=9)
    axes[0][-1].legend(fontsize=7, loc="best")
    return png(fig)


def change_figure(changes: pd.DataFrame) -> bytes:
    """Change in shortcut-breaking accuracy from the lowest to the highest rate, per algorithm and condition."""
    conds = changes[["task", "artifact"]].drop_duplicates().sort_values(["task", "artifact"]).to_records(index=False)
    algs = sorted(changes["algorithm"].unique())
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(conds) * len(algs) + 1.2))
    y, ticks, labels = 0, [], []
    for task, artifact in conds:
        for alg in algs:
            r = changes[(changes["task"] == task) & (changes["artifact"] == artifact) & (changes["algorithm"] == alg)]
            if r.empty:
                continue
            r = r.iloc[0]
            ax.errorbar(r["diff"] * 100, y, xerr=[[(r["diff"] - r["lo"]) * 100], [(r["hi"] - r["diff"]) * 100]],
                        fmt="o", color=colour(alg), capsize=3)
            if r["mark"]:
                ax.annotate(r["mark"], (r["hi"] * 100, y), xytext=(4, -3), textcoords="offset points", fontsize=9)
            ticks.append(y)
            labels.append(f"{task} / {LABEL.get(artifact, artifact)} / {alg}")
            y += 1
        y += 0.6
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("change in shortcut-breaking accuracy, lowest → highest rate (points, 95% CI)")
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def reliance_figure(rel: pd.DataFrame) -> bytes:
    """Reliance (difference-in-differences vs the base, 95% CI) by training rate: one panel per task × artifact.

    Rates 0 and 1 are the controls: the negative one should sit on zero, the positive one clearly above it.
    """
    r = rel.dropna(subset=["reliance"]) if "reliance" in rel else rel.iloc[0:0]
    panels = r[["task", "artifact"]].drop_duplicates().sort_values(["artifact", "task"]).to_records(index=False)
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.6 * max(1, len(panels)), 3.4), squeeze=False,
                             sharey=True)
    for ax, (task, artifact) in zip(axes[0], panels):
        p = r[(r["task"] == task) & (r["artifact"] == artifact)]
        for alg, g in p.groupby("algorithm"):
            g = g.sort_values("rate")
            ax.errorbar(g["rate"] * 100, g["reliance"] * 100, yerr=[(g["reliance"] - g["lo"]) * 100,
                        (g["hi"] - g["reliance"]) * 100], color=colour(alg), capsize=3, marker="o", label=alg)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"{task}: {LABEL.get(artifact, artifact)}", fontsize=9)
        ax.set_xlabel("spurious rate (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("reliance vs base (points)")
    axes[0][-1].legend(fontsize=7, loc="best")
    return png(fig)


def curves_figure(points: pd.DataFrame) -> bytes:
    """Learning curves: one panel per arm (its colour), training loss (dashed) and the objective's loss on the
    validation split (solid) at evenly spaced points of training, one line per task."""
    arms = sorted(points["algorithm"].unique())
    fig, axes = plt.subplots(1, len(arms), figsize=(3.2 * len(arms), 3.0), squeeze=False)
    styles = dict(zip(sorted(points["task"].unique()), ["o", "s", "^", "D", "v"]))
    for ax, arm in zip(axes[0], arms):
        for task, g in points[points["algorithm"] == arm].groupby("task"):
            g = g.sort_values("k")
            x = g["k"] / g["k"].max() * 100
            if "eval_loss" in g:
                ax.plot(x, g["eval_loss"], marker=styles[task], color=colour(arm), label=f"{task} validation")
            ax.plot(x, g["train_loss"], marker=styles[task], color=colour(arm), linestyle="--", alpha=0.6,
                    label=f"{task} train")
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("% of training")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("objective loss")
    axes[0][-1].legend(fontsize=6, loc="best")
    return png(fig)
