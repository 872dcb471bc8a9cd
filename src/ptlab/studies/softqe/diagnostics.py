"""What the SoftQE report checks about its own inputs: expansion leaks and training convergence.

Both read only what the study directory records (`shared.json`'s leak reports,
each encoder's training record with its held-out learning curve), so the report
can be rewritten without a model.
"""

from __future__ import annotations

import pandas as pd

from ptlab.report.figures import colour, plt, png
from ptlab.report.verdicts import Check
from ptlab.studies.softqe.cells import COLLECTIONS, TRAIN_SET

LEAK_CHECK = "Expansions do not copy the relevant passage (leak check)"
CONVERGED = "Training converged (held-out dev loss)"


def _pct(v) -> str:
    return "–" if v is None else f"{v * 100:.1f}"


def _ordered(leak: dict) -> list[str]:
    """The query sets in the study's order (the training queries, then each collection), whatever the JSON's."""
    order = [TRAIN_SET, *COLLECTIONS.values()]
    return sorted(leak, key=lambda g: (order.index(g) if g in order else len(order), g))


def leak_table(leak: dict, study_label: str = "study") -> pd.DataFrame:
    """One row per (query set, expansion source): n-gram overlap with the gold passage(s) vs random passages."""
    rows = []
    for group in _ordered(leak):
        for source in sorted(leak[group], key=lambda s: s != "study"):  # the study's own expansions first
            rep = leak[group][source]
            by_n = rep["by_n"]
            row = {"queries": group, "expansion": study_label if source == "study" else source}
            for n, s in by_n.items():
                d = s.get("diff")
                row[f"{n}-gram gold / random (%)"] = f"{_pct(s['gold'])} / {_pct(s['random'])}"
                if str(n) == str(rep["leak_n"]):
                    row[f"{n}-gram gold − random (points, 95% CI)"] = (
                        "–" if not d else f"{d['mean'] * 100:+.1f} [{d['low'] * 100:+.1f}, {d['high'] * 100:+.1f}]")
            row["leaks"] = "yes" if rep["leaks"] else "no"
            rows.append(row)
    return pd.DataFrame(rows)


def leak_check(leak: dict | None, source_label: str) -> Check:
    """Passed when the study's own expansions leak on no query set; the oracle is shown as the reference."""
    if not leak:
        return Check(LEAK_CHECK, None, "not recorded (a study directory from before the leak check)")
    mine = {g: s["study"] for g, s in leak.items() if "study" in s}
    if not mine:  # the study expanded with the oracle itself
        return Check(LEAK_CHECK, False, "the study's expansions are the oracle's, which copy the gold passage by "
                     "construction: its numbers are an upper bound, not an LLM's")
    bad = [g for g, rep in mine.items() if rep["leaks"]]
    oracle = next((leak[g]["oracle (upper bound)"] for g in _ordered(leak) if "oracle (upper bound)" in leak[g]), None)
    ref = f"; the oracle, for reference: {oracle['reason']}" if oracle else ""
    detail = "; ".join(f"{g}: {mine[g]['reason']}" for g in _ordered(mine))
    return Check(LEAK_CHECK, not bad, f"{source_label} — {detail}{ref}")


def convergence_check(records: dict[str, dict | None]) -> Check:
    """Every encoder's training record says it converged on its held-out dev loss (`ptlab.retrieval.train`)."""
    have = {name: info for name, info in records.items() if info and info.get("curve")}
    if not have:
        return Check(CONVERGED, None, "no learning curve recorded (trained without a dev split)")
    bad = [name for name, info in have.items() if not info.get("converged")]
    parts = [f"{name}: best dev loss {info['best_dev_loss']:.4f} at step {info['best_step']} of {info['steps']}"
             + (" (stopped early)" if info.get("stopped_early") else "") for name, info in have.items()]
    missing = sorted(set(records) - set(have))
    return Check(CONVERGED, not bad and not missing,
                 "; ".join(parts) + (f"; not converged: {', '.join(bad)}" if bad else "")
                 + (f"; no curve: {', '.join(missing)}" if missing else ""))


def curves_figure(records: dict[str, dict | None]) -> bytes | None:
    """Dev loss (solid) and training loss (dotted) against the step, one panel per encoder."""
    have = {name: info for name, info in records.items() if info and info.get("curve")}
    if not have:
        return None
    fig, axes = plt.subplots(1, len(have), figsize=(3.6 * len(have), 3.2), squeeze=False)
    for ax, (name, info) in zip(axes[0], have.items()):
        curve = info["curve"]
        steps = [p["step"] for p in curve]
        ax.plot(steps, [p["dev_loss"] for p in curve], color=colour(name), marker="o", ms=3, label="dev")
        train = [(p["step"], p["train_loss"]) for p in curve if p.get("train_loss") is not None]
        if train:
            ax.plot(*zip(*train), color=colour(name), ls=":", label="train")
        ax.axvline(info["best_step"], color="#777777", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("loss")
    fig.tight_layout()
    return png(fig)
