"""One colour per arm: every study's arms are named, colours are distinct and stable, and the figures use them."""

import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from ptlab.report.colours import ARM_COLOURS, colour, colours

HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


def _arms():
    from ptlab.studies.softqe.cells import FIXED_SYSTEMS, student_name
    from ptlab.synth.strategies import STRATEGIES
    from ptlab.train.objectives import OBJECTIVES

    spurious = ["base", *OBJECTIVES, "sft+dpo", "sft+kto"]
    budget = [*STRATEGIES, "seeds_only", "base"]
    softqe = [*FIXED_SYSTEMS, *(student_name(a) for a in (0.0, 0.5, 1.0))]
    return spurious, budget, softqe


def test_every_studys_arms_have_a_named_colour_distinct_within_and_across_studies():
    for arms in _arms():
        assert all(a in ARM_COLOURS for a in arms), [a for a in arms if a not in ARM_COLOURS]
        assert len(set(colours(arms))) == len(set(arms))  # distinct within a study
    assert all(HEX.match(c) for c in ARM_COLOURS.values())
    assert len(set(ARM_COLOURS.values())) == len(ARM_COLOURS)  # and across studies: one arm, one colour
    assert colour("base") == ARM_COLOURS["base"]  # `base` is shared: the same colour in every study


def test_unknown_arms_get_a_stable_distinct_colour_not_a_named_one():
    names = ["grpo", "SoftQE α=0.3", "rso", "sft+simpo", "my arm"]
    got = colours(names)
    assert all(HEX.match(c) for c in got)
    assert len(set(got)) == len(got) and not set(got) & set(ARM_COLOURS.values())
    assert colours(names) == got
    code = "from ptlab.report.colours import colours; print(colours(%r))" % names
    for seed in ("1", "2"):  # Python's str hash is randomised per process; the fallback must not be
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert out.stdout.strip() == str(got)


def test_the_older_colors_name_is_the_same_mapping():
    from ptlab.report.figures import COLORS

    assert COLORS["sft"] == colour("sft") and COLORS.get("dpo") == colour("dpo")


def _capture(monkeypatch, module):
    """Run a figure function with `png` replaced so the Matplotlib figure is kept for inspection."""
    kept = []
    monkeypatch.setattr(module, "png", lambda fig: kept.append(fig) or b"png")
    return kept


def _same(c, arm) -> bool:
    return np.allclose(to_rgba(c), to_rgba(colour(arm)))


def test_budget_and_softqe_figures_draw_each_arm_in_its_colour(monkeypatch):
    import ptlab.studies.budget.report as budget
    import ptlab.studies.softqe.figures as softqe_figures
    from ptlab.retrieval.evaluate import CollectionResult, SystemResult
    from ptlab.retrieval.stats import Interval
    from ptlab.studies.softqe.cells import systems

    kept = _capture(monkeypatch, budget)
    rows = [{"seed_size": 0, "budget": 0, "strategy": "base", "accuracy": 0.2, "lo": 0.1, "hi": 0.3}]
    rows += [{"seed_size": 4, "budget": 0, "strategy": "seeds_only", "accuracy": 0.3, "lo": 0.2, "hi": 0.4}]
    rows += [{"seed_size": 4, "budget": q, "strategy": s, "accuracy": 0.5, "lo": 0.4, "hi": 0.6}
             for s in ("answer_augmentation", "question_rephrase", "new_question") for q in (4, 16)]
    budget.curves_figure(pd.DataFrame(rows))
    ax = kept[0].axes[0]
    lines = {line.get_label(): line.get_color() for line in ax.get_lines()}
    lines.update({c.get_label(): c.lines[0].get_color() for c in ax.containers})  # errorbar series
    for s in ("answer_augmentation", "question_rephrase", "new_question"):
        assert _same(lines[s], s)
    base_line = next(v for k, v in lines.items() if k.startswith("base model"))
    assert _same(base_line, "base") and _same(next(v for k, v in lines.items() if k.startswith("seeds only")),
                                              "seeds_only")

    kept = _capture(monkeypatch, softqe_figures)
    res = CollectionResult("SQuAD (in-domain)", 3, 10)
    for name in systems([0.0, 0.5]):
        res.systems[name] = SystemResult(name, {"nDCG@10": np.ones(3)}, {"nDCG@10": Interval(0.5, 0.4, 0.6)},
                                         1.0, 1.0, 3)
    softqe_figures.systems_figure({"SQuAD (in-domain)": res})
    bars = kept[0].axes[0].patches
    assert len(bars) == len(res.systems)
    for bar, name in zip(bars, res.systems):
        assert _same(bar.get_facecolor(), name)
    assert np.allclose(bars[0].get_facecolor(), to_rgba(base_line))  # `base`: the same colour in both studies


@pytest.mark.parametrize("arm", ["sft", "answer_augmentation", "teacher (q+)"])
def test_colour_is_a_plain_lookup_for_named_arms(arm):
    assert colour(arm) == ARM_COLOURS[arm]
