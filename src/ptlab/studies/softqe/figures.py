"""The SoftQE report's figure: one bar per system with its 95% interval, one panel per collection.

Each system keeps its colour (`ptlab.report.colours`) in every panel and every study's report.
"""

from __future__ import annotations

from ptlab.report.figures import colour, plt, png
from ptlab.retrieval.evaluate import CollectionResult


def systems_figure(results: dict[str, CollectionResult], measure: str = "nDCG@10") -> bytes:
    width = max(5.5, 0.75 * max(len(r.systems) for r in results.values()))
    fig, axes = plt.subplots(1, len(results), figsize=(width * len(results), 4), squeeze=False)
    for ax, (label, res) in zip(axes[0], results.items()):
        names = list(res.systems)
        ivs = [res.systems[n].means[measure] for n in names]
        means = [iv.mean * 100 for iv in ivs]
        err = [[(iv.mean - iv.low) * 100 for iv in ivs], [(iv.high - iv.mean) * 100 for iv in ivs]]
        ax.bar(range(len(names)), means, yerr=err, capsize=4, color=[colour(n) for n in names],
               edgecolor="#333333", linewidth=0.5)
        base = res.systems.get("base")
        if base is not None:  # the reference every student is compared with
            ax.axhline(base.means[measure].mean * 100, color=colour("base"), ls=":", lw=1)
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.set_title(f"{label} (n={res.n_queries})", fontsize=10)
        ax.set_ylabel(f"{measure} (x100, 95% CI)")
        lo = min(iv.low for iv in ivs) * 100
        ax.set_ylim(max(0.0, lo - 10), min(100.0, max(iv.high for iv in ivs) * 100 + 5))
    fig.tight_layout()
    return png(fig)
