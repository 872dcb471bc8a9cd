"""The report: analysis numbers on synthetic outcomes, and the files `ptlab report` writes."""

import base64
import json

import numpy as np
import pandas as pd
import pytest

from ptlab.errors import PtlabError
from ptlab.studies.grid.store import ResultStore
from ptlab.studies.spurious.analysis import condition_table, gain_over_base, rate_change, winners
from ptlab.studies.spurious.reliance import reliance_table
from ptlab.studies.spurious.report import load_study, write_report
from ptlab.studies.spurious.study import STUDY

N = 120


def _cells_and_examples():
    """sft loses 40 points on the breaking split from rate 0.1 to 0.9; dpo stays put. 2 seeds, same examples: the
    evaluation items are the same at every rate, and item i of eval_id and of eval_break are twins."""
    rng = np.random.default_rng(0)
    cells, examples = [], []
    for alg in ("sft", "dpo"):
        for rate in (0.1, 0.9):
            for seed in (0, 1):
                cid = f"math.feature_ambiguity.cue.r{rate}.{alg}.s{seed}"
                cells.append({"cell_id": cid, "task": "math", "artifact": "feature_ambiguity", "feature": "cue",
                              "rate": rate, "algorithm": alg, "seed": seed})
                p_break = 0.2 if (alg == "sft" and rate == 0.9) else 0.6
                for i in range(N):
                    examples.append({"cell_id": cid, "split": "eval_id", "example_id": f"id-{i}",
                                     "correct": int(rng.random() < 0.8), "shortcut_agrees": 1})
                    examples.append({"cell_id": cid, "split": "eval_break", "example_id": f"br-{i}",
                                     "correct": int(rng.random() < p_break), "shortcut_agrees": 0})
    return pd.DataFrame(cells), pd.DataFrame(examples)


def test_condition_table_numbers():
    cells, ex = _cells_and_examples()
    t = condition_table(cells, ex)
    row = t[(t.algorithm == "sft") & (t.rate == 0.9) & (t.split == "eval_break")].iloc[0]
    expected = ex[ex.cell_id.str.contains("r0.9.sft") & (ex.split == "eval_break")]["correct"].mean()
    assert row["accuracy"] == pytest.approx(expected)
    assert row["lo"] < row["accuracy"] < row["hi"] and row["seeds"] == 2 and row["n"] == N
    assert set(t.split) == {"eval_id", "eval_break"}  # reliance is the base-relative `reliance_table`'s now


def test_reliance_is_the_gap_minus_the_base_gap_on_the_same_items():
    cells, ex = _with_base(*_cells_and_examples())
    rel = reliance_table(cells, ex).set_index(["rate", "algorithm"])
    sft, dpo, base = rel.loc[(0.9, "sft")], rel.loc[(0.9, "dpo")], rel.loc[(0.9, "base")]
    assert sft["gap"] == pytest.approx(sft["holds"] - sft["breaks"]) and sft["gap"] == pytest.approx(0.8 - 0.2, abs=0.1)
    assert base["gap"] == 0.0 and np.isnan(base["reliance"])  # the base is the reference, not a condition
    assert sft["reliance"] == pytest.approx(sft["gap"] - base["gap"]) and sft["lo"] > 0 and sft["p_adj"] < 0.05
    assert sft["family"] == "reliance" and sft["p_adj"] >= sft["p"] and sft["seeds"] == 2  # 2 seeds: a wide interval
    assert dpo["reliance"] == pytest.approx(0.8 - 0.6, abs=0.1) and dpo["reliance"] < sft["reliance"]
    assert sft["n"] == N and np.isnan(sft["neutral"])  # no eval_neutral outcomes in these cells
    assert "reliance" not in reliance_table(*_cells_and_examples())  # without a base there is nothing to subtract


def test_rate_change_is_paired_and_significant_only_where_it_should_be():
    cells, ex = _cells_and_examples()
    ch = rate_change(cells, ex).set_index("algorithm")
    assert ch.loc["sft", "family"] == "rate change" and ch.loc["sft", "p_adj"] >= ch.loc["sft", "p"]
    assert ch.loc["sft", "seeds"] == 2 and len(ch.loc["sft", "per_seed"].split(",")) == 2
    assert ch.loc["sft", "diff"] == pytest.approx(-0.4, abs=0.08)
    assert ch.loc["sft", "p_adj"] < 0.05 and ch.loc["sft", "mark"] in ("*", "**", "***")
    assert abs(ch.loc["dpo", "diff"]) < 0.1 and ch.loc["dpo", "p"] > 0.01


def test_winners():
    cells, ex = _cells_and_examples()
    w = winners(cells, ex).set_index("rate")
    assert w.loc[0.9, "best"] == "dpo" and bool(w.loc[0.9, "beats_all"]) and w.loc[0.9, "mark"] == "***"
    assert not bool(w.loc[0.1, "beats_all"])


def _with_base(cells, ex):
    """Add untrained-base cells: exactly 50% right (the trained ones reach about 80%), on the same examples."""
    base_cells, base_ex = [], []
    for rate in (0.1, 0.9):
        cid = f"math.feature_ambiguity.cue.r{rate}.base.s0"
        base_cells.append({"cell_id": cid, "task": "math", "artifact": "feature_ambiguity", "feature": "cue",
                           "rate": rate, "algorithm": "base", "seed": 0})
        for i in range(N):
            base_ex.append({"cell_id": cid, "split": "eval_id", "example_id": f"id-{i}",
                            "correct": i % 2, "shortcut_agrees": 1})
            base_ex.append({"cell_id": cid, "split": "eval_break", "example_id": f"br-{i}",
                            "correct": i % 2, "shortcut_agrees": 0})
    return pd.concat([cells, pd.DataFrame(base_cells)]), pd.concat([ex, pd.DataFrame(base_ex)])


def test_gain_over_base_is_paired_per_condition():
    cells, ex = _with_base(*_cells_and_examples())
    g = gain_over_base(cells, ex).set_index(["rate", "algorithm"])
    assert len(g) == 4 and (g["family"] == "gains").all()
    row = g.loc[(0.9, "sft")]
    assert row["base"] == 0.5
    assert row["diff"] == pytest.approx(row["trained"] - row["base"]) and row["diff"] == pytest.approx(0.3, abs=0.1)
    assert row["p"] < 0.01 and row["lo"] > 0
    assert gain_over_base(*_cells_and_examples()).empty  # no base cells, nothing to compare with


def _write_study(root, base=False):
    cells, ex = _cells_and_examples()
    if base:
        cells, ex = _with_base(cells, ex)
    root.mkdir(parents=True)
    store = ResultStore(root / "results.sqlite", STUDY.axes)
    for cell in cells.to_dict("records"):
        mine = ex[ex.cell_id == cell["cell_id"]]
        store.add_cell(cell, "h", {"eval_break/accuracy": mine[mine.split == "eval_break"]["correct"].mean()},
                       [{"split": r.split, "id": r.example_id, "correct": r.correct, "shortcut_agrees": r.shortcut_agrees}
                        for r in mine.itertuples()], {"train_s": 1.0})
    (root / "study.json").write_text(json.dumps({"cells": [{"cell_id": c} for c in cells["cell_id"]],
                                                 "config": {"model": "tiny", "data": {"n_train": 64, "n_eval": N},
                                                            "train": {"batch_size": 8, "max_steps": 4, "lr": 1e-3}}}))


def test_write_report_files(tmp_path):
    root = tmp_path / "study"
    _write_study(root)
    md = write_report(root)
    out = md.parent
    for name in ("report.md", "report.html", "table.md", "conditions.csv", "task-math.png"):
        assert (out / name).is_file(), name
    text = md.read_text()
    # the report opens with its findings, then its design checks; the details follow
    assert text.index("## Findings") < text.index("## Design checks") < text.index("## Design\n")
    findings = text.split("## Findings")[1].split("## Design checks")[0]
    assert ("| Models often, but not always, degrade at the high spurious rate | **supported** | -3" in findings
            and "shown: math/FA/sft: breaks @0.9 − @0.1; 1 of 2 conditions" in findings)
    assert "| DPO and KTO are relatively robust on math (they degrade less than SFT) | **supported** |" in findings
    assert "| SFT is stronger than DPO and KTO on context-heavy document QA | **not tested** |" in findings
    checks = text.split("## Design checks")[1].split("## Design\n")[0]
    assert "| at least 5 training seeds | **fail** | 2 seeds |" in checks
    assert "| arms tuned on the validation split | **not run** |" in checks
    tests = text.split("## The claims' tests")[1].split("##")[0]
    assert "| claim 1 | math/FA/dpo: breaks @0.9 − @0.1 |" in tests and "| claim 2 | math/FA: dpo change − sft change |" in tests
    assert "| math | Feature Ambiguity | sft |" in text and "\\*\\*\\*" in text
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1  # the per-task figure (no base: no reliance figure)
    png = base64.b64decode(html.split("data:image/png;base64,")[1].split("'")[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Gain over the base model" not in text


def test_report_shows_the_gain_over_the_base(tmp_path):
    _write_study(tmp_path / "study", base=True)
    text = write_report(tmp_path / "study").read_text()
    section = text.split("## Gain over the base model")[1].split("##")[0]
    assert "| task | artifact | rate | base accuracy | dpo | sft |" in section
    assert "| math | Feature Ambiguity | 90% | 0.50 | +30." in section and section.count("\\*") >= 4


def test_report_on_a_non_study_dir_is_an_error(tmp_path):
    with pytest.raises(PtlabError, match="not a study directory"):
        load_study(tmp_path)
