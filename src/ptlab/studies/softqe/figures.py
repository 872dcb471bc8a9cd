"""The SoftQE report's figure: one bar per system with its 95% interval, one panel per collection."""

from __future__ import annotations

from ptlab.report.figures import plt, png
from ptlab.retrieval.evaluate import CollectionResult

FIXED_COLORS = {"base": "#999999", "base + LLM exp.": "#e3a33b", "teacher (q+)": "#5b8bd0", "teacher (q)": "#9bb7e0"}


def systems_figure(results: dict[str, CollectionResult], measure: str = "nDCG@10") -> bytes:
    width = max(5.5, 0.75 * max(len(r.systems) for r in results.values()))
    fig, axes = plt.subplots(1, len(results), figsize=(width * len(results), 4), squeeze=False)
    greens = plt.get_cmap("Greens")
    for ax, (label, res) in zip(axes[0], results.items()):
        names = list(res.systems)
        ivs = [res.systems[n].means[measure] for n in names]
        means = [iv.mean * 100 for iv in ivs]
        err = [[(iv.mean - iv.low) * 100 for iv in ivs], [(iv.high - iv.mean) * 100 for iv in ivs]]
        students = [n for n in names if n not in FIXED_COLORS]  # the students: darker green as alpha grows
        colors = [FIXED_COLORS.get(n) or greens(0.45 + 0.5 * students.index(n) / max(1, len(students) - 1))
                  for n in names]
        ax.bar(range(len(names)), means, yerr=err, capsize=4, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.set_title(f"{label} (n={res.n_queries})", fontsize=10)
        ax.set_ylabel(f"{measure} (x100, 95% CI)")
        lo = min(iv.low for iv in ivs) * 100
        ax.set_ylim(max(0.0, lo - 10), min(100.0, max(iv.high for iv in ivs) * 100 + 5))
    fig.tight_layout()
    return png(fig)
